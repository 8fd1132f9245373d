//! Incremental parser for the server-sent events wire format.
//!
//! Written here rather than taken from a crate so that it works on raw bytes: lines are
//! decoded only once complete, so a read that ends inside a multi-byte character or
//! inside `data:` is harmless. Follows the WHATWG event-stream rules: `\n`, `\r\n` and
//! `\r` all end a line, `:` starts a comment (keep-alives), several `data:` lines join
//! with `\n`, a blank line dispatches the event.

use std::collections::VecDeque;

use super::LlmError;

/// Longest line or event accepted; protects memory against a runaway upstream.
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, if one was given.
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug, Default)]
pub(crate) struct SseParser {
    line: Vec<u8>,
    /// The previous line ended with `\r`; a `\n` arriving next belongs to it.
    after_carriage_return: bool,
    seen_first_line: bool,
    data: String,
    event: Option<String>,
    ready: VecDeque<SseEvent>,
}

impl SseParser {
    /// Feeds the next bytes read from the connection.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<(), LlmError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.after_carriage_return {
            self.after_carriage_return = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&bytes[..end]);
            self.check_size()?;
            self.end_line();
            let terminator_len = match (bytes[end], bytes.get(end + 1)) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => {
                    self.after_carriage_return = true;
                    1
                }
                _ => 1,
            };
            bytes = &bytes[end + terminator_len..];
        }
        self.line.extend_from_slice(bytes);
        self.check_size()
    }

    /// Ends the input: a last line without terminator and a last event without the
    /// closing blank line are still delivered, since some servers omit them.
    pub fn finish(&mut self) {
        if !self.line.is_empty() {
            self.end_line();
        }
        self.dispatch();
    }

    pub fn next_event(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    fn check_size(&self) -> Result<(), LlmError> {
        if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
            return Err(LlmError::Protocol(format!(
                "event larger than {MAX_EVENT_BYTES} bytes"
            )));
        }
        Ok(())
    }

    fn end_line(&mut self) {
        let mut line = std::mem::take(&mut self.line);
        if !self.seen_first_line {
            self.seen_first_line = true;
            if line.starts_with(BYTE_ORDER_MARK) {
                line.drain(..BYTE_ORDER_MARK.len());
            }
        }
        if line.is_empty() {
            self.dispatch();
            return;
        }
        let line = String::from_utf8_lossy(&line);
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => self.event = Some(value.to_owned()),
            // `id` and `retry` only matter for browser reconnection.
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        let event = self.event.take();
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the `\n` appended after the last data line
        self.ready.push_back(SseEvent { event, data });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;

    fn parse_in_pieces(pieces: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for piece in pieces {
            parser.push(piece).unwrap();
            events.extend(std::iter::from_fn(|| parser.next_event()));
        }
        parser.finish();
        events.extend(std::iter::from_fn(|| parser.next_event()));
        events
    }

    fn data(events: &[SseEvent]) -> Vec<&str> {
        events.iter().map(|e| e.data.as_str()).collect()
    }

    const SAMPLE: &str = "\u{FEFF}: keep-alive\r\n\r\ndata: {\"a\":\"é🙂\"}\r\n\r\nevent: error\ndata: line one\ndata:line two\n\n: ping\n\ndata: [DONE]\n\n";

    #[test]
    fn parses_comments_crlf_multiline_and_event_types() {
        let events = parse_in_pieces(&[SAMPLE.as_bytes()]);
        assert_eq!(
            data(&events),
            vec!["{\"a\":\"é🙂\"}", "line one\nline two", "[DONE]"]
        );
        assert_eq!(events[1].event.as_deref(), Some("error"));
        assert_eq!(events[0].event, None);
    }

    #[test]
    fn bare_carriage_returns_end_lines_even_across_reads() {
        let events = parse_in_pieces(&[b"data: a\r", b"\r", b"data: b\r", b"\n", b"\r\n"]);
        assert_eq!(data(&events), vec!["a", "b"]);
    }

    #[test]
    fn unterminated_last_event_is_delivered_on_finish() {
        let events = parse_in_pieces(&[b"data: [DONE]"]);
        assert_eq!(data(&events), vec!["[DONE]"]);
    }

    #[test]
    fn field_without_colon_and_empty_data() {
        let events = parse_in_pieces(&[b"data\n\ndata:\n\nretry: 10\nid: 3\n\n"]);
        assert_eq!(data(&events), vec!["", ""]);
    }

    #[test]
    fn oversized_line_is_a_protocol_error() {
        let mut parser = SseParser::default();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert!(matches!(parser.push(&big), Err(LlmError::Protocol(_))));
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_events(cuts in proptest::collection::vec(0usize..=SAMPLE.len(), 0..12)) {
            let bytes = SAMPLE.as_bytes();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in cuts {
                pieces.push(&bytes[start..cut.max(start)]);
                start = cut.max(start);
            }
            pieces.push(&bytes[start..]);
            prop_assert_eq!(parse_in_pieces(&pieces), parse_in_pieces(&[bytes]));
        }
    }

    #[test]
    fn every_single_byte_split_matches() {
        let bytes = SAMPLE.as_bytes();
        let whole = parse_in_pieces(&[bytes]);
        for cut in 0..=bytes.len() {
            assert_eq!(
                parse_in_pieces(&[&bytes[..cut], &bytes[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_in_pieces(&one_by_one), whole);
    }
}
