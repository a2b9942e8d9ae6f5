//! Invalid configurations: every problem at once, exit 64, before any port is bound; and
//! `check-config` for valid ones.

use crate::support::run_cmd;

#[test]
fn every_problem_is_reported_at_once_with_exit_64_before_binding() {
    // Hold the port the tenant plane is told to use: if it tried to bind before validating,
    // it would fail with a bind error instead of the configuration errors.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let (code, stdout, stderr) = run_cmd(
        &[
            ("TP_BIND_ADDR", addr.as_str()),
            ("BYOC_PROVIDER", "azure"),
            ("BYOC_MODEL", "gpt-4o"),
            ("BYOC_API_VERSION", "v1"),
            ("TP_ROUTING_CACHE_TTL", "soon"),
            ("EMBEDDING_PROVIDER", "cohere"),
        ],
        &[],
    );
    assert_eq!(code, 64, "{stderr}");
    assert!(stdout.is_empty());
    for expected in [
        "BYOC_ENDPOINT_URL (or byoc.endpointUrl in the values file) is required for provider azure",
        "BYOC_API_KEY (or byoc.apiKey in the values file) is required for provider azure",
        "BYOC_API_VERSION: \"v1\" is not an Azure OpenAI API version",
        "TP_ROUTING_CACHE_TTL: \"soon\" is not a duration",
        "EMBEDDING_PROVIDER: unknown embedding provider \"cohere\"; valid embedding providers are openai, bedrock, fallback",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("(5 problems)"), "{stderr}");
    assert!(!stderr.contains("cannot listen"), "{stderr}");
}

#[test]
fn unknown_provider_lists_the_valid_ones() {
    let (code, _, stderr) = run_cmd(&[("BYOC_PROVIDER", "openia")], &["check-config"]);
    assert_eq!(code, 64);
    assert!(stderr.contains("BYOC_PROVIDER: unknown provider \"openia\"; valid providers are openai, azure, bedrock, anthropic, vertex, ollama, vllm, openai-compatible"), "{stderr}");
}

#[test]
fn provider_specific_requirements_are_named() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("BYOC_PROVIDER", "bedrock"),
                ("BYOC_MODEL", "m"),
                ("BYOC_REGION", "us-east-1"),
            ],
            "Bedrock needs credentials",
        ),
        (
            &[
                ("BYOC_PROVIDER", "bedrock"),
                ("BYOC_MODEL", "m"),
                ("TP_BEDROCK_USE_TASK_ROLE", "1"),
            ],
            "is required for provider bedrock, for example us-east-1",
        ),
        (
            &[
                ("BYOC_PROVIDER", "bedrock"),
                ("BYOC_REGION", "us-east-1"),
                ("BYOC_AWS_ACCESS_KEY_ID", "AKIAEXAMPLE123456"),
            ],
            "BYOC_AWS_ACCESS_KEY_ID is set but BYOC_AWS_SECRET_ACCESS_KEY is not",
        ),
        (
            &[("BYOC_PROVIDER", "openai"), ("BYOC_MODEL", "gpt-4o-mini")],
            "BYOC_API_KEY (or byoc.apiKey in the values file) is required for provider openai",
        ),
        (
            &[("BYOC_PROVIDER", "ollama"), ("BYOC_MODEL", "llama3.2")],
            "BYOC_ENDPOINT_URL (or byoc.endpointUrl in the values file) is required for provider ollama",
        ),
        (
            &[("BYOC_PROVIDER", "anthropic"), ("BYOC_API_KEY", "sk-ant-x")],
            "BYOC_MODEL (or byoc.model in the values file) is required for provider anthropic",
        ),
        (
            &[
                ("BYOC_PROVIDER", "vertex"),
                ("BYOC_MODEL", "gemini-2.0-flash"),
            ],
            "BYOC_GCP_PROJECT (or byoc.gcpProject in the values file) is required for provider vertex",
        ),
        (
            &[
                ("BYOC_PROVIDER", "azure"),
                ("BYOC_MODEL", "d"),
                ("BYOC_API_KEY", "k"),
                (
                    "BYOC_ENDPOINT_URL",
                    "https://x.openai.azure.com/openai/deployments/d/chat/completions",
                ),
            ],
            "not a deployment URL",
        ),
        (
            &[("BYOC_MODEL", "gpt-4o")],
            "BYOC_PROVIDER (or byoc.provider in the values file) is not set, but BYOC_MODEL is set",
        ),
        (
            &[
                ("BYOC_PROVIDER", "openai"),
                ("BYOC_MODEL", "m"),
                ("BYOC_API_KEY", "k"),
                ("BYOC_API_KEY_FILE", "/nonexistent"),
            ],
            "BYOC_API_KEY and BYOC_API_KEY_FILE are both set",
        ),
        (
            &[
                ("BYOC_PROVIDER", "openai"),
                ("BYOC_MODEL", "m"),
                ("BYOC_API_KEY_FILE", "/nonexistent/key"),
            ],
            "BYOC_API_KEY_FILE: cannot read /nonexistent/key",
        ),
        (
            &[("EMBEDDING_PROVIDER", "openai")],
            "EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY or EMBEDDING_API_KEY",
        ),
        (
            &[("EMBEDDING_PROVIDER", "bedrock")],
            "EMBEDDING_PROVIDER=bedrock needs AWS_REGION",
        ),
        (
            &[("TP_ADMIN_TOKEN", "short")],
            "the admin token must be at least 16 characters",
        ),
    ];
    for (vars, expected) in cases {
        let (code, _, stderr) = run_cmd(vars, &["check-config"]);
        assert_eq!(code, 64, "{vars:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{vars:?}: expected {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn values_file_typos_are_rejected_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("values.yaml");
    std::fs::write(
        &path,
        "byoc:\n  provider: openai\n  apikey: sk-x\n  model: gpt-4o-mini\n",
    )
    .unwrap();
    let (code, _, stderr) = run_cmd(&[], &["--values", path.to_str().unwrap(), "check-config"]);
    assert_eq!(code, 64);
    assert!(
        stderr.contains("unknown key byoc.apikey; did you mean byoc.apiKey?"),
        "{stderr}"
    );
}

#[test]
fn check_config_shows_values_and_their_sources() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("values.yaml");
    std::fs::write(&path, "byoc:\n  provider: anthropic\n  model: claude-3-5-sonnet-20241022\nembeddings:\n  provider: fallback\n").unwrap();
    let key = dir.path().join("api-key");
    std::fs::write(&key, "sk-ant-api03-secret-from-a-file-9999\n").unwrap();
    let (code, stdout, stderr) = run_cmd(
        &[
            ("BYOC_API_KEY_FILE", key.to_str().unwrap()),
            ("BYOC_MODEL", "claude-3-5-haiku-20241022"),
        ],
        &["--values", path.to_str().unwrap(), "check-config"],
    );
    assert_eq!(code, 0, "{stderr}");
    let line = |setting: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{setting}  ")))
            .unwrap_or_else(|| panic!("no {setting} line in:\n{stdout}"))
            .to_owned()
    };
    assert!(
        line("provider").contains("anthropic") && line("provider").contains("(byoc.provider)"),
        "{stdout}"
    );
    assert!(
        line("model").contains("claude-3-5-haiku-20241022")
            && line("model").contains("env BYOC_MODEL"),
        "{stdout}"
    );
    assert!(
        line("api key").contains("set (…9999)") && line("api key").contains("BYOC_API_KEY_FILE"),
        "{stdout}"
    );
    assert!(!stdout.contains("secret-from-a-file"), "{stdout}");
}

#[test]
fn a_provider_settings_typo_in_the_environment_is_a_warning() {
    let (code, stdout, _) = run_cmd(&[("BYOC_MODLE", "x")], &["check-config"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(
            "warning: BYOC_MODLE is not a setting the tenant plane reads; did you mean BYOC_MODEL?"
        ),
        "{stdout}"
    );
}

#[test]
fn air_gapped_mode_refuses_public_endpoints_and_cloud_fallback() {
    let refused: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("BYOC_PROVIDER", "openai"),
                ("BYOC_API_KEY", "sk-proj-0123456789"),
                ("BYOC_MODEL", "gpt-4o-mini"),
            ],
            "provider openai would call api.openai.com, a public endpoint",
        ),
        (
            &[
                ("BYOC_PROVIDER", "bedrock"),
                ("BYOC_REGION", "us-east-1"),
                ("BYOC_AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
                ("BYOC_AWS_SECRET_ACCESS_KEY", "x".repeat(40).leak()),
                ("BYOC_MODEL", "m"),
            ],
            "provider bedrock would call bedrock-runtime.us-east-1.amazonaws.com, a public endpoint",
        ),
        (
            &[
                ("BYOC_PROVIDER", "openai"),
                ("BYOC_API_KEY", "ollama"),
                ("BYOC_ENDPOINT_URL", "http://8.8.8.8:11434/v1"),
                ("BYOC_MODEL", "llama3.2"),
            ],
            "which resolves to 8.8.8.8, outside private address space",
        ),
        (
            &[
                ("BYOC_PROVIDER", "ollama"),
                ("BYOC_ENDPOINT_URL", "http://ollama.invalid:11434/v1"),
                ("BYOC_MODEL", "llama3.2"),
            ],
            "cannot be resolved",
        ),
        (
            &[
                ("EMBEDDING_PROVIDER", "openai"),
                ("OPENAI_API_KEY", "sk-proj-0123456789"),
            ],
            "embeddings would call api.openai.com, a public endpoint",
        ),
        (
            &[("AI_CREDITS_FAIL_OPEN", "1")],
            "TP_AIR_GAPPED=1 and AI_CREDITS_FAIL_OPEN=1 contradict each other",
        ),
    ];
    for (vars, expected) in refused {
        let mut vars = vars.to_vec();
        vars.push(("TP_AIR_GAPPED", "1"));
        let (code, _, stderr) = run_cmd(&vars, &["check-config"]);
        assert_eq!(code, 64, "{vars:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{vars:?}: expected {expected:?} in:\n{stderr}"
        );
    }
    let accepted: &[&[(&str, &str)]] = &[
        &[
            ("BYOC_PROVIDER", "openai"),
            ("BYOC_API_KEY", "ollama"),
            ("BYOC_ENDPOINT_URL", "http://127.0.0.1:11434/v1"),
            ("BYOC_MODEL", "llama3.2"),
        ],
        &[
            ("BYOC_PROVIDER", "vllm"),
            ("BYOC_ENDPOINT_URL", "http://10.20.30.40:8000/v1"),
            ("BYOC_MODEL", "m"),
            ("EMBEDDING_PROVIDER", "openai"),
            ("EMBEDDING_ENDPOINT_URL", "http://[fd00::5]:8000/v1"),
        ],
        &[
            ("BYOC_PROVIDER", "azure"),
            ("BYOC_API_KEY", "k"),
            ("BYOC_ENDPOINT_URL", "https://localhost"),
            ("BYOC_MODEL", "d"),
        ],
        &[],
    ];
    for vars in accepted {
        let mut vars = vars.to_vec();
        vars.push(("TP_AIR_GAPPED", "1"));
        let (code, stdout, stderr) = run_cmd(&vars, &["check-config"]);
        assert_eq!(code, 0, "{vars:?}: {stderr}");
        assert!(stdout.contains("air gapped"), "{stdout}");
    }
}
