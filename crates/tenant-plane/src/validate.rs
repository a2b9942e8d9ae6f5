//! Checks for user-supplied fields, shared by the API services and log ingest. Each error
//! says what is accepted; callers prefix the field name.

/// The longest service name, tag or label accepted.
pub const MAX_NAME_CHARS: usize = 128;

/// A service name, tag or similar identifier: 1 to 128 of ASCII letters, digits and
/// `. _ - : / @`. Surrounding whitespace is removed.
pub fn name(field: &str, value: &str) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if v.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "{field} is longer than {MAX_NAME_CHARS} characters"
        ));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'/' | b'@'))
    {
        return Err(format!(
            "{field} {:?} may only contain ASCII letters, digits and . _ - : / @",
            v.chars().take(MAX_NAME_CHARS).collect::<String>()
        ));
    }
    Ok(v.to_owned())
}

/// A record id: a UUID, returned in its canonical lowercase hyphenated form.
pub fn id(field: &str, value: &str) -> Result<String, String> {
    uuid::Uuid::parse_str(value.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| {
            format!(
                "{field} {:?} is not an id; ids are UUIDs such as 0193a5e2-7c1d-7b4e-9f3a-2d1c0b9a8f7e",
                value.chars().take(64).collect::<String>()
            )
        })
}

/// Free text: surrounding whitespace removed; required text must not be empty; at most `max`
/// bytes.
pub fn text(field: &str, value: &str, required: bool, max: usize) -> Result<String, String> {
    let v = value.trim();
    if required && v.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if v.len() > max {
        return Err(format!("{field} is {} bytes; the limit is {max}", v.len()));
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name("service", " payments-api ").unwrap(), "payments-api");
        assert!(
            name("service", "")
                .unwrap_err()
                .contains("must not be empty")
        );
        assert!(
            name("service", "a b")
                .unwrap_err()
                .contains("may only contain")
        );
        assert!(name("service", &"x".repeat(129)).is_err());
    }

    #[test]
    fn ids() {
        let u = "0193A5E2-7C1D-7B4E-9F3A-2D1C0B9A8F7E";
        assert_eq!(id("id", u).unwrap(), u.to_ascii_lowercase());
        assert!(id("incident_id", "42").unwrap_err().contains("incident_id"));
    }
}
