//! Choosing among precompressed variants (`x.css.br`, `x.css.zst`, `x.css.gz`) from
//! Accept-Encoding (RFC 9110 §12.5.3): q-values decide what is acceptable, and the smallest
//! acceptable representation wins. Pure functions.

/// A content coding dragoman serves precompressed files in, with its file suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Coding {
    Brotli,
    Zstd,
    Gzip,
}

impl Coding {
    pub(crate) const ALL: [Coding; 3] = [Coding::Brotli, Coding::Zstd, Coding::Gzip];

    /// The Content-Encoding token.
    pub(crate) fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// The coding a Content-Encoding token names (as `token` writes it).
    pub(crate) fn from_token(token: &str) -> Option<Coding> {
        Coding::ALL.into_iter().find(|c| c.token() == token)
    }

    /// The sibling file's suffix.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Coding::Brotli => ".br",
            Coding::Zstd => ".zst",
            Coding::Gzip => ".gz",
        }
    }
}

/// What an Accept-Encoding header accepts: a q-value per coding, identity and `*`.
#[derive(Debug, Default)]
pub(crate) struct Accepted {
    codings: Vec<(String, f32)>,
}

impl Accepted {
    pub(crate) fn parse(header: &str) -> Accepted {
        let codings = header
            .split(',')
            .filter_map(|item| {
                let mut parts = item.split(';');
                let name = parts.next()?.trim().to_ascii_lowercase();
                if name.is_empty() {
                    return None;
                }
                let q = parts
                    .filter_map(|p| {
                        p.trim()
                            .strip_prefix("q=")
                            .or_else(|| p.trim().strip_prefix("Q="))
                    })
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                Some((name, q))
            })
            .collect();
        Accepted { codings }
    }

    fn q(&self, name: &str) -> Option<f32> {
        self.codings
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, q)| *q)
    }

    /// Whether a coding may be sent. `x-gzip` counts as gzip; `*` covers what is not named.
    pub(crate) fn accepts(&self, coding: Coding) -> bool {
        let named = self.q(coding.token()).or_else(|| {
            if coding == Coding::Gzip {
                self.q("x-gzip")
            } else {
                None
            }
        });
        named.or_else(|| self.q("*")).is_some_and(|q| q > 0.0)
    }

    /// Whether the unencoded representation may be sent: unless `identity;q=0`, or `*;q=0`
    /// without identity named (§12.5.3).
    pub(crate) fn accepts_identity(&self) -> bool {
        match self.q("identity") {
            Some(q) => q > 0.0,
            None => self.q("*").is_none_or(|q| q > 0.0),
        }
    }
}

/// Picks the representation to send: `None` for the unencoded file, or a coding. `variants`
/// lists the codings present with their sizes; `identity` is the unencoded size. The
/// smallest acceptable wins; if nothing is acceptable, the unencoded file is sent anyway
/// (rather than a 406, as servers commonly do).
pub(crate) fn choose(
    header: Option<&str>,
    identity: u64,
    variants: &[(Coding, u64)],
) -> Option<Coding> {
    let header = header?;
    let accepted = Accepted::parse(header);
    let mut best: Option<(Option<Coding>, u64)> =
        accepted.accepts_identity().then_some((None, identity));
    for &(coding, size) in variants {
        if accepted.accepts(coding) && best.is_none_or(|(_, b)| size < b) {
            best = Some((Some(coding), size));
        }
    }
    best.and_then(|(coding, _)| coding)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [(Coding, u64); 3] = [
        (Coding::Brotli, 300),
        (Coding::Zstd, 320),
        (Coding::Gzip, 400),
    ];

    #[test]
    fn smallest_acceptable_wins() {
        assert_eq!(
            choose(Some("gzip, deflate, br, zstd"), 1000, &ALL),
            Some(Coding::Brotli)
        );
        assert_eq!(choose(Some("gzip, zstd"), 1000, &ALL), Some(Coding::Zstd));
        assert_eq!(choose(Some("gzip"), 1000, &ALL), Some(Coding::Gzip));
        assert_eq!(choose(Some("x-gzip"), 1000, &ALL), Some(Coding::Gzip));
        assert_eq!(choose(None, 1000, &ALL), None);
        assert_eq!(choose(Some("deflate"), 1000, &ALL), None);
        // A variant larger than the file itself loses to the file.
        assert_eq!(choose(Some("gzip"), 100, &ALL), None);
    }

    #[test]
    fn q_values() {
        assert_eq!(
            choose(Some("br;q=0, gzip;q=0.5"), 1000, &ALL),
            Some(Coding::Gzip)
        );
        assert_eq!(
            choose(Some("br;q=0.1, gzip"), 1000, &ALL),
            Some(Coding::Brotli)
        );
        assert_eq!(choose(Some("*"), 1000, &ALL), Some(Coding::Brotli));
        assert_eq!(choose(Some("*;q=0, gzip"), 1000, &ALL), Some(Coding::Gzip));
        assert_eq!(choose(Some("br;q=0, gzip;q=0, zstd;q=0"), 1000, &ALL), None);
        // identity refused and no variant acceptable: the file goes out anyway.
        assert_eq!(choose(Some("identity;q=0"), 1000, &[]), None);
        assert!(!Accepted::parse("identity;q=0").accepts_identity());
        assert!(!Accepted::parse("*;q=0").accepts_identity());
        assert!(Accepted::parse("*;q=0, identity").accepts_identity());
    }
}
