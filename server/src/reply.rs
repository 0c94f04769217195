//! The one place that turns a command's failure into Redis's error text.
//!
//! Handlers return `Result<Reply, CmdError>`; the connection encodes the `Ok` reply or
//! `CmdError::reply()` into its output buffer.

use bytes::Bytes;
use respite_protocol::Reply;

/// Why a command failed, as Redis would word it.
#[derive(Debug)]
pub enum CmdError {
    /// `ERR wrong number of arguments for '<name>' command` (name lower-case, `a|b` for subs).
    Arity(String),
    /// `ERR syntax error`.
    Syntax,
    /// `ERR value is not an integer or out of range`.
    NotInteger,
    /// `ERR value is not a valid float`.
    NotFloat,
    /// `ERR increment or decrement would overflow`.
    Overflow,
    /// `ERR invalid expire time in '<cmd>' command`.
    InvalidExpire(&'static str),
    /// `WRONGTYPE Operation against a key holding the wrong kind of value`. Only strings
    /// exist so far; kept so the text lives here when lists and hashes arrive.
    #[allow(dead_code)]
    WrongType,
    /// `ERR no such key`.
    NoSuchKey,
    /// `ERR DB index is out of range`.
    DbIndex,
    /// `NOAUTH Authentication required.`
    NoAuth,
    /// `ERR unknown subcommand '<sub>'. Try <CMD> HELP.` (`sub` as the client sent it).
    UnknownSubcommand { cmd: String, sub: Bytes },
    /// Writes are refused after a failed fsync: `MISCONF ...`.
    Misconf(String),
    /// Data on disk failed its check (an encrypted page that does not authenticate, a
    /// record with a bad CRC): `ERR <the engine's text, naming file and page or offset>`.
    /// Logged by the dispatcher: an operator must hear of it, not only the client.
    Damaged(String),
    /// Any other error line, full text with its code prefix (e.g. "ERR ...").
    Text(String),
    /// A fixed error line.
    Static(&'static str),
    /// An error line that quotes the client's bytes as Redis does (`%s` of a C string: up
    /// to the first NUL, not made valid UTF-8).
    Raw(Vec<u8>),
}

impl CmdError {
    /// An `ERR ...` error with a formatted text.
    pub fn err(text: impl std::fmt::Display) -> CmdError {
        CmdError::Text(format!("ERR {text}"))
    }

    /// The error line (without `-` and CRLF), made valid UTF-8 (for tests).
    #[cfg(test)]
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.line()).into_owned()
    }

    /// The error line's bytes (without `-` and CRLF).
    #[must_use]
    pub fn line(&self) -> Vec<u8> {
        let text: String = match self {
            CmdError::Arity(name) => format!("ERR wrong number of arguments for '{name}' command"),
            CmdError::Syntax => "ERR syntax error".into(),
            CmdError::NotInteger => "ERR value is not an integer or out of range".into(),
            CmdError::NotFloat => "ERR value is not a valid float".into(),
            CmdError::Overflow => "ERR increment or decrement would overflow".into(),
            CmdError::InvalidExpire(cmd) => format!("ERR invalid expire time in '{cmd}' command"),
            CmdError::WrongType => {
                "WRONGTYPE Operation against a key holding the wrong kind of value".into()
            }
            CmdError::NoSuchKey => "ERR no such key".into(),
            CmdError::DbIndex => "ERR DB index is out of range".into(),
            CmdError::NoAuth => "NOAUTH Authentication required.".into(),
            CmdError::UnknownSubcommand { cmd, sub } => {
                let mut line = b"ERR unknown subcommand '".to_vec();
                line.extend_from_slice(cbytes(sub, 128));
                line.extend_from_slice(format!("'. Try {cmd} HELP.").as_bytes());
                return line;
            }
            CmdError::Raw(line) => return line.clone(),
            CmdError::Misconf(why) => misconf_text(why),
            CmdError::Damaged(what) => format!("ERR {what}"),
            CmdError::Text(t) => t.clone(),
            CmdError::Static(t) => (*t).to_owned(),
        };
        text.into_bytes()
    }

    /// The error as a reply value. Newlines are replaced by spaces, as Redis does, so an
    /// error can never break the protocol.
    #[must_use]
    pub fn reply(&self) -> Reply {
        let mut t = self.line();
        for b in &mut t {
            if *b == b'\r' || *b == b'\n' {
                *b = b' ';
            }
        }
        Reply::Error(Bytes::from(t))
    }
}

/// The text of a write refused because the engine cannot make data durable now (`why`,
/// from the engine, says until when).
#[must_use]
pub fn misconf_text(why: &str) -> String {
    format!("MISCONF Errors writing to the AOF file: {why}; reads still work.")
}

impl From<respite_storage::Error> for CmdError {
    fn from(e: respite_storage::Error) -> Self {
        match e {
            respite_storage::Error::WritesRefused(why) => CmdError::Misconf(why),
            e @ (respite_storage::Error::Tampered { .. }
            | respite_storage::Error::Corrupt { .. }) => CmdError::Damaged(e.to_string()),
            other => CmdError::err(other),
        }
    }
}

/// A command's outcome.
pub type CmdResult = Result<Reply, CmdError>;

/// What C's `%.<max>s` prints of an argument: its bytes up to the first NUL, at most `max`.
#[must_use]
pub fn cbytes(b: &[u8], max: usize) -> &[u8] {
    let b = b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n]);
    &b[..b.len().min(max)]
}

/// Redis's `unknown command` error:
/// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `, quoting the client's
/// bytes as Redis's printf does (each argument up to a NUL, 128 bytes in all).
#[must_use]
pub fn unknown_command(args: &[Bytes]) -> CmdError {
    let mut rest = Vec::new();
    for a in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        rest.push(b'\'');
        rest.extend_from_slice(cbytes(a, room));
        rest.extend_from_slice(b"' ");
    }
    let mut line = b"ERR unknown command '".to_vec();
    line.extend_from_slice(cbytes(&args[0], 128));
    line.extend_from_slice(b"', with args beginning with: ");
    line.extend_from_slice(&rest);
    CmdError::Raw(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_text() {
        let args: Vec<Bytes> = ["foo", "a", "b"].iter().map(|s| Bytes::from(*s)).collect();
        assert_eq!(
            unknown_command(&args).text(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        let args = vec![Bytes::from("foo")];
        assert_eq!(
            unknown_command(&args).text(),
            "ERR unknown command 'foo', with args beginning with: "
        );
    }

    #[test]
    fn client_bytes_are_quoted_as_c_strings() {
        let args = vec![
            Bytes::from_static(b"fo\xffo\0bar"),
            Bytes::from_static(b"1\0x"),
        ];
        assert_eq!(
            unknown_command(&args).reply(),
            Reply::Error(Bytes::from_static(
                b"ERR unknown command 'fo\xffo', with args beginning with: '1' "
            ))
        );
    }

    #[test]
    fn newlines_never_reach_the_wire() {
        let r = CmdError::err("a\r\nb").reply();
        assert_eq!(r, Reply::Error(Bytes::from("ERR a  b")));
    }

    #[test]
    fn damaged_pages_are_errors_naming_file_and_page() {
        let e = CmdError::from(respite_storage::Error::Tampered {
            file: "/d/0000000001.log".into(),
            page: 1,
        });
        assert!(matches!(e, CmdError::Damaged(_)));
        assert_eq!(
            e.text(),
            "ERR encrypted page 1 of /d/0000000001.log failed authentication (damaged or tampered)"
        );
        let e = CmdError::from(respite_storage::Error::Closed);
        assert!(!matches!(e, CmdError::Damaged(_)));
    }
}
