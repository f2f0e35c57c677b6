//! Which listener a connection came in on, and what that means for its
//! requests: who is trusted for the forwarding headers, whether ACME
//! challenges and HTTPS redirects apply, and whether a request may be
//! forwarded to another node.

/// The listener a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// Clients, plain HTTP: ACME challenges and HTTPS redirects apply.
    Plain,
    /// Clients, HTTPS.
    Tls,
    /// Other node proxies (mutual TLS with node certificates, or plain for
    /// measurements): the request was forwarded by a node that already
    /// answered challenges, applied redirects and wrote `X-Forwarded-*`;
    /// it is served by local instances only, never forwarded again.
    Peer { tls: bool },
}

impl Side {
    /// The connection is TLS.
    pub(crate) fn tls(self) -> bool {
        match self {
            Side::Plain => false,
            Side::Tls => true,
            Side::Peer { tls } => tls,
        }
    }

    /// Another node proxy's listener.
    pub(crate) fn is_peer(self) -> bool {
        matches!(self, Side::Peer { .. })
    }

    /// The plain client listener, which answers ACME challenges and
    /// redirects to HTTPS.
    pub(crate) fn is_plain(self) -> bool {
        self == Side::Plain
    }

    /// The scheme of the client's own connection, for `X-Forwarded-Proto`
    /// when the request did not come from another node (or that node did
    /// not say).
    pub(crate) fn own_scheme(self) -> &'static str {
        match self {
            Side::Plain => "http",
            // A node forwards only what reached it, most of it over HTTPS.
            Side::Tls | Side::Peer { .. } => "https",
        }
    }

    /// Whether the client's `X-Forwarded-For` chain is kept: only another
    /// node's word is taken, and that node already put the client there.
    pub(crate) fn keeps_forwarded(self) -> bool {
        self.is_peer()
    }
}
