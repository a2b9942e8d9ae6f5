//! A hand-written encoder for the AWS event-stream framing, independent of the decoder the
//! client uses (aws-smithy-eventstream), so that each checks the other.
//!
//! A message is: total length (u32 BE), headers length (u32 BE), CRC32 of those 8 bytes,
//! the headers, the payload, and a CRC32 of everything before it. A header is its name length
//! (u8), name, value type (7 = string), value length (u16 BE) and value.

use serde_json::Value;

/// The header value type tag for UTF-8 strings.
const STRING: u8 = 7;

/// One encoded message.
pub(crate) fn message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut encoded_headers = Vec::new();
    for (name, value) in headers {
        encoded_headers.push(name.len() as u8);
        encoded_headers.extend_from_slice(name.as_bytes());
        encoded_headers.push(STRING);
        encoded_headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        encoded_headers.extend_from_slice(value.as_bytes());
    }
    let total = 12 + encoded_headers.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(encoded_headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&encoded_headers);
    out.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    out
}

/// A ConverseStream event, headers in the order Bedrock sends them.
pub(crate) fn event(event_type: &str, payload: &Value) -> Vec<u8> {
    message(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// A modelled exception inside the stream (`throttlingException`, ...).
pub(crate) fn exception(exception_type: &str, message_text: &str) -> Vec<u8> {
    message(
        &[
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        serde_json::json!({ "message": message_text })
            .to_string()
            .as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_checksums_are_where_the_format_puts_them() {
        let m = message(&[(":message-type", "event")], b"{}");
        let total = u32::from_be_bytes([m[0], m[1], m[2], m[3]]) as usize;
        let headers = u32::from_be_bytes([m[4], m[5], m[6], m[7]]) as usize;
        assert_eq!(total, m.len());
        assert_eq!(headers, 1 + 13 + 1 + 2 + 5);
        assert_eq!(
            u32::from_be_bytes([m[8], m[9], m[10], m[11]]),
            crc32fast::hash(&m[..8])
        );
        let end = m.len() - 4;
        assert_eq!(&m[end - 2..end], b"{}");
        assert_eq!(
            u32::from_be_bytes([m[end], m[end + 1], m[end + 2], m[end + 3]]),
            crc32fast::hash(&m[..end])
        );
    }
}
