//! The markdown rendering of a gateway benchmark run.

use std::fmt::Write as _;

use crate::gateway::{Report, TargetResult};

fn added_at(t: &TargetResult, c: usize) -> String {
    t.added
        .iter()
        .find(|a| a.concurrency == c)
        .map_or("–".to_owned(), |a| {
            format!("{:.3} / {:.3}", a.p50_ms, a.p99_ms)
        })
}

/// The report as a markdown page: the summary table the issue asks for, then the raw numbers.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Gateway benchmark\n");
    let _ = writeln!(
        out,
        "Machine: {} × {} ({}), kernel {}. {}. Load generator: {}. Each level: {:.0} s warm-up, {:.0} s measured. Stream chunks {:.1} ms apart.\n",
        r.machine.cpus,
        r.machine.cpu,
        if r.machine.load_generator_cpus == "0" {
            "load generator pinned to CPU 0"
        } else {
            "load generator NOT pinned"
        },
        r.machine.kernel,
        r.settings.placement,
        r.settings.load_generator,
        r.settings.warmup_s,
        r.settings.window_s,
        r.settings.stream_gap_ms,
    );
    let cs = &r.settings.concurrency;
    let _ = write!(out, "| Gateway |");
    for c in cs {
        let _ = write!(out, " added ms p50 / p99, c={c} |");
    }
    let _ = writeln!(
        out,
        " max throughput (req/s) | peak RSS (MiB) | stream first byte p50 (ms, added) |"
    );
    let _ = write!(out, "|---|");
    for _ in cs {
        let _ = write!(out, "---|");
    }
    let _ = writeln!(out, "---|---|---|");
    for t in &r.targets {
        let _ = write!(out, "| {} |", t.name);
        for &c in cs {
            let _ = write!(out, " {} |", added_at(t, c));
        }
        let ttfb = t.stream.as_ref().map_or("–".to_owned(), |s| {
            if s.requests == 0 {
                return format!(
                    "failed: {}",
                    s.first_error.as_deref().unwrap_or("no stream completed")
                );
            }
            match t.added_ttfb_p50_ms {
                Some(a) => format!("{:.3} ({a:+.3})", s.ttfb_p50_ms),
                None => format!("{:.3}", s.ttfb_p50_ms),
            }
        });
        let _ = writeln!(
            out,
            " {:.0} | {:.1} | {ttfb} |",
            t.max_throughput_rps, t.peak_rss_mib
        );
    }
    for s in &r.skipped {
        let _ = writeln!(
            out,
            "| {} | not measured: {} |",
            s.name,
            s.reason.replace('|', "/")
        );
    }
    let _ = writeln!(
        out,
        "\nAdded latency is the gateway's percentile minus the upstream's at the same concurrency. Throughput and tail latency on a shared 2-CPU machine move by tens of percent between runs (other work competes for the CPUs; the load averages are listed under Targets); the CPU time per request below moves less, but still by up to a third (Portkey's, unchanged, between two runs on 2026-12-03). To compare two builds of the tenant plane, count instructions per request with callgrind instead (docs/gateway.md, Performance). A stream's added first byte is over the upstream called directly in rounds that alternate with the gateway's (five each, splitting the window; last column of the stream table below), not over the upstream's own row, measured minutes earlier.\n"
    );
    let _ = writeln!(out, "## Raw numbers\n");
    let _ = writeln!(
        out,
        "| Target | c | req/s | p50 ms | p90 ms | p99 ms | max ms | CPU µs/request | errors |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for t in &r.targets {
        for l in &t.chat {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {}{} |",
                t.name,
                l.concurrency,
                l.throughput_rps,
                l.p50_ms,
                l.p90_ms,
                l.p99_ms,
                l.max_ms,
                l.cpu_us_per_request,
                l.errors,
                l.first_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
    }
    let _ = writeln!(
        out,
        "\n| Target (stream, c=1) | first byte p50 ms | first byte p99 ms | whole stream p50 ms | streams | errors | the upstream directly, alternating rounds: first byte p50 ms |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for t in &r.targets {
        if let Some(s) = &t.stream {
            let _ = writeln!(
                out,
                "| {} | {:.3} | {:.3} | {:.3} | {} | {}{} | {} |",
                t.name,
                s.ttfb_p50_ms,
                s.ttfb_p99_ms,
                s.total_p50_ms,
                s.requests,
                s.errors,
                s.first_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default(),
                s.upstream_ttfb_p50_ms
                    .map_or("–".to_owned(), |u| format!("{u:.3}"))
            );
        }
    }
    let _ = writeln!(out, "\n## Targets\n");
    for t in &r.targets {
        let _ = writeln!(
            out,
            "- **{}**: {} (machine load average {:.1} → {:.1})",
            t.name, t.description, t.load_average[0], t.load_average[1]
        );
    }
    let m = &r.metrics_cost;
    let _ = writeln!(
        out,
        "\n## Cost of recording metrics\n\nMeasured in-process over {} iterations: {:.0} ns per HTTP request observation, {:.0} ns per model-call observation, {:.0} ns per gateway request in all.",
        m.iterations, m.http_request_ns, m.model_call_ns, m.per_gateway_request_ns
    );
    out
}
