//! Which domain names can go in a certificate ordered over HTTP-01:
//! lowercase DNS host names of at least two labels, no wildcards (HTTP-01
//! cannot prove control of a wildcard) and no IP addresses.

/// Why a domain name cannot be ordered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidDomain {
    /// The name is empty.
    #[error("the domain name is empty; give a host name such as app.example.com")]
    Empty,

    /// The name is longer than DNS allows.
    #[error("the domain name {domain:?} is {len} characters long; DNS names are at most 253")]
    TooLong {
        /// The rejected name.
        domain: String,
        /// Its length.
        len: usize,
    },

    /// A wildcard, which HTTP-01 cannot validate.
    #[error(
        "{domain:?} is a wildcard; HTTP-01 cannot validate wildcards, list each host name instead"
    )]
    Wildcard {
        /// The rejected name.
        domain: String,
    },

    /// Upper-case letters: names are compared and stored in lower case.
    #[error("{domain:?} has upper-case letters; write it as {lowercase:?}")]
    NotLowercase {
        /// The rejected name.
        domain: String,
        /// The same name in lower case.
        lowercase: String,
    },

    /// A trailing dot (a fully qualified DNS name): certificates hold names without it.
    #[error("{domain:?} ends with a dot; leave the trailing dot out")]
    TrailingDot {
        /// The rejected name.
        domain: String,
    },

    /// Two dots in a row, or a leading dot.
    #[error("{domain:?} has an empty label (a leading dot or two dots in a row)")]
    EmptyLabel {
        /// The rejected name.
        domain: String,
    },

    /// A label longer than DNS allows.
    #[error("{domain:?} has a label of {len} characters; DNS labels are at most 63")]
    LabelTooLong {
        /// The rejected name.
        domain: String,
        /// The long label's length.
        len: usize,
    },

    /// A character outside letters, digits, `-` and `.`.
    #[error("{domain:?} contains {character:?}; use only a-z, 0-9, '-' and '.' (write international names in their xn-- form)")]
    BadCharacter {
        /// The rejected name.
        domain: String,
        /// The first offending character.
        character: char,
    },

    /// A label that starts or ends with `-`.
    #[error("{domain:?} has a label that starts or ends with '-'")]
    Hyphen {
        /// The rejected name.
        domain: String,
    },

    /// A single label such as `localhost`, which no public CA issues for.
    #[error(
        "{domain:?} is a single label; give a fully qualified name such as {domain}.example.com"
    )]
    NotQualified {
        /// The rejected name.
        domain: String,
    },

    /// An all-numeric last label, as in an IP address.
    #[error(
        "{domain:?} looks like an IP address; HTTP-01 certificates here are for DNS names only"
    )]
    Numeric {
        /// The rejected name.
        domain: String,
    },
}

/// The longest DNS name, without a trailing dot.
const MAX_NAME: usize = 253;
/// The longest DNS label.
const MAX_LABEL: usize = 63;

/// Checks that `domain` can be ordered over HTTP-01; see [`InvalidDomain`]
/// for what is refused.
pub fn validate_domain(domain: &str) -> Result<(), InvalidDomain> {
    let owned = || domain.to_string();
    if domain.is_empty() {
        return Err(InvalidDomain::Empty);
    }
    if domain.len() > MAX_NAME {
        return Err(InvalidDomain::TooLong {
            domain: owned(),
            len: domain.len(),
        });
    }
    if domain.contains('*') {
        return Err(InvalidDomain::Wildcard { domain: owned() });
    }
    if domain.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(InvalidDomain::NotLowercase {
            domain: owned(),
            lowercase: domain.to_ascii_lowercase(),
        });
    }
    if let Some(character) = domain
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Err(InvalidDomain::BadCharacter {
            domain: owned(),
            character,
        });
    }
    if domain.len() > 1 && domain.ends_with('.') && !domain.ends_with("..") {
        return Err(InvalidDomain::TrailingDot { domain: owned() });
    }
    let mut labels = 0;
    let mut last = "";
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(InvalidDomain::EmptyLabel { domain: owned() });
        }
        if label.len() > MAX_LABEL {
            return Err(InvalidDomain::LabelTooLong {
                domain: owned(),
                len: label.len(),
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(InvalidDomain::Hyphen { domain: owned() });
        }
        labels += 1;
        last = label;
    }
    if labels < 2 {
        return Err(InvalidDomain::NotQualified { domain: owned() });
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidDomain::Numeric { domain: owned() });
    }
    Ok(())
}

#[cfg(test)]
#[path = "domain_tests.rs"]
mod tests;
