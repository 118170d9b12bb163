//! Record text (what a record says, written and parsed back as untrusted
//! text), its tokens, and the file names of the registry directory.

use super::Kind;
use crate::sys::ObjectId;

/// What a record says. Every field may be missing from a damaged record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Record {
    pub(crate) kind: Option<Kind>,
    pub(crate) pid: Option<u32>,
    pub(crate) size: Option<u64>,
    pub(crate) kept: bool,
    pub(crate) token: Option<u64>,
    pub(crate) id: Option<ObjectId>,
}

pub(crate) fn encode(os_name: &str) -> String {
    let mut s = String::new();
    for b in os_name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

pub(crate) fn decode(file: &str) -> Option<String> {
    let bytes = file.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = file.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses a record; unknown keys and malformed lines are skipped. The identity
/// counts only when both `dev` and `ino` parse.
pub(crate) fn parse(text: &str) -> Record {
    let mut r = Record::default();
    let (mut dev, mut ino) = (None, None);
    for line in text.lines().take(32) {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "kind" => r.kind = Kind::parse(v),
            "pid" => r.pid = v.parse().ok(),
            "size" => r.size = v.parse().ok(),
            "kept" => r.kept = v == "1",
            "token" => r.token = u64::from_str_radix(v, 16).ok().filter(|_| v.len() == 16),
            "dev" => dev = v.parse().ok(),
            "ino" => ino = v.parse().ok(),
            _ => {}
        }
    }
    r.id = dev.zip(ino).map(|(dev, ino)| ObjectId { dev, ino });
    r
}

pub(super) fn record_text(r: &Record) -> String {
    let mut s = String::new();
    if let Some(k) = r.kind {
        s.push_str(&format!("kind={}\n", k.as_str()));
    }
    if let Some(p) = r.pid {
        s.push_str(&format!("pid={p}\n"));
    }
    if let Some(n) = r.size {
        s.push_str(&format!("size={n}\n"));
    }
    s.push_str(&format!("kept={}\n", u8::from(r.kept)));
    if let Some(t) = r.token {
        s.push_str(&format!("token={t:016x}\n"));
    }
    if let Some(id) = r.id {
        s.push_str(&format!("dev={}\nino={}\n", id.dev, id.ino));
    }
    s
}

/// 64 bits that no other record of this machine is likely to have.
pub(super) fn random_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// The encoded name a registry file belongs to.
pub(super) fn file_of(fname: &str) -> Option<&str> {
    if let Some(f) = fname.strip_suffix(".owner") {
        return Some(f);
    }
    if let Some(f) = fname.strip_suffix(".lock") {
        return Some(f);
    }
    if let Some(rest) = fname.strip_suffix(".live") {
        let (f, token) = rest.rsplit_once('.')?;
        return (token.len() == 16 && u64::from_str_radix(token, 16).is_ok()).then_some(f);
    }
    let (f, pid) = fname.rsplit_once(".owner.tmp")?;
    pid.parse::<u32>().ok().map(|_| f)
}

#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let r = parse(&text);
    // What we write, we read back the same.
    assert_eq!(parse(&record_text(&r)), r);
    let _ = file_of(&text);
    if let Some(n) = decode(&text) {
        assert_eq!(decode(&encode(&n)), Some(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip_through_file_names() {
        for n in ["/ShareMemory", r"Local\x", r"Global\a:b*c", "/a%b", "/ü"] {
            let f = encode(n);
            assert!(
                f.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-_%".contains(&b)),
                "{f}"
            );
            assert_eq!(decode(&f).as_deref(), Some(n));
        }
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%zz"), None);
    }

    #[test]
    fn records_parse() {
        let r = parse(
            "kind=segment\npid=42\nsize=4096\nkept=1\ntoken=00000000000000ff\ndev=5\nino=77\nfuture=x\n",
        );
        assert_eq!(
            r,
            Record {
                kind: Some(Kind::Segment),
                pid: Some(42),
                size: Some(4096),
                kept: true,
                token: Some(255),
                id: Some(ObjectId { dev: 5, ino: 77 }),
            }
        );
        assert_eq!(parse(&record_text(&r)), r);
        assert_eq!(
            parse("garbage\n=\npid=-1\nkind=a b\ntoken=12\ndev=1"),
            Record::default()
        );
    }

    #[test]
    fn registry_file_names_map_to_their_object() {
        assert_eq!(file_of("%2Fa.b.owner"), Some("%2Fa.b"));
        assert_eq!(file_of("%2Fa.lock"), Some("%2Fa"));
        assert_eq!(file_of("%2Fa.0123456789abcdef.live"), Some("%2Fa"));
        assert_eq!(file_of("%2Fa.owner.tmp123"), Some("%2Fa"));
        assert_eq!(file_of("%2Fa.12.live"), None);
        assert_eq!(file_of("%2Fa.owner.tmpx"), None);
        assert_eq!(file_of("stray"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_records_and_names_never_panic(text in ".{0,300}", file in ".{0,40}") {
            let r = parse(&text);
            prop_assert_eq!(parse(&record_text(&r)), r);
            let _ = file_of(&file);
            if let Some(n) = decode(&file) {
                prop_assert_eq!(decode(&encode(&n)), Some(n));
            }
        }
    }
}
