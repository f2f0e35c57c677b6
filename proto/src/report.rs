//! Showing an error with every cause after it, for logs and for answers to
//! people: the error enums keep their causes as typed sources, and this
//! writes the chain out once, `: `-separated.

/// `error: cause: cause of the cause`.
pub struct Report<'a>(pub &'a (dyn std::error::Error + 'a));

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Report;

    #[derive(Debug, thiserror::Error)]
    #[error("could not start web")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_named_once() {
        let error = Outer(std::io::Error::other("no such file"));
        assert_eq!(
            Report(&error).to_string(),
            "could not start web: no such file"
        );
        let alone = std::io::Error::other("alone");
        assert_eq!(Report(&alone).to_string(), "alone");
    }
}
