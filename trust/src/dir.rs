//! The cluster directory `reef cluster init` creates: everything the
//! cluster's security rests on. Public files (JWTs, the CA certificate)
//! may be copied anywhere; the files under `keys/` and every `.creds` file
//! are secrets, 0600, and never leave this machine.
//!
//! ```text
//! cluster.json            name and public keys (written last: its presence means complete)
//! operator.jwt            the operator, signed by itself
//! accounts/reef.jwt       the account every reef process is in
//! accounts/system.jwt     the NATS system account
//! keys/operator.nk        operator seed: signs accounts (revocations)
//! keys/account.nk         the reef account's identity seed
//! keys/account-signing.nk signs every user and node credential
//! keys/system.nk          the system account's seed
//! keys/ca-key.pem         the CA's private key
//! keys/assign.nk          signs every command the leader sends a node
//! tls/ca.pem              the CA certificate every client trusts
//! cluster.key             the key that encrypts secrets at rest
//! admin.creds             the first admin's credentials
//! coordinator.creds       the coordinators' credentials
//! system.creds            a system-account user (pushes account updates)
//! nats/nats.conf          a single server's configuration, with its certificate
//! ```

use crate::files::{self, Mode};
use crate::jwt::{self, AccountLimits, Claims, User};
use crate::permissions::{self, NodeTrust, Permissions};
use crate::{creds, natsconf, pki, TrustError};
use nkeys::KeyPair;
use reef_proto::roles::Role;
use reef_proto::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const SMALL: u64 = 64 * 1024;

/// The public facts of a cluster, in `cluster.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterInfo {
    pub name: String,
    pub operator: String,
    pub account: String,
    pub account_signing_key: String,
    pub system_account: String,
    pub created_at: u64,
}

/// An opened cluster directory.
pub struct ClusterDir {
    pub dir: PathBuf,
    pub info: ClusterInfo,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn key_error(e: nkeys::error::Error) -> TrustError {
    TrustError::Key(e.to_string())
}

fn seed(key: &KeyPair) -> Result<Zeroizing<String>, TrustError> {
    key.seed().map(Zeroizing::new).map_err(key_error)
}

/// An account's limits: for the reef account (`jetstream`), JetStream on
/// and what reef uses; for the system account, JetStream off.
fn account_limits(jetstream: bool) -> AccountLimits {
    if !jetstream {
        return AccountLimits {
            subs: -1,
            data: -1,
            payload: -1,
            imports: -1,
            exports: -1,
            wildcards: true,
            conn: -1,
            leaf: -1,
            mem_storage: 0,
            disk_storage: 0,
            streams: 0,
            consumer: 0,
        };
    }
    AccountLimits {
        subs: -1,
        data: -1,
        payload: -1,
        // reef uses no leaf nodes, imports or exports.
        imports: 0,
        exports: 0,
        wildcards: true,
        conn: -1,
        leaf: 0,
        mem_storage: -1,
        disk_storage: -1,
        // reef makes about 20 (streams, buckets, the artifacts store).
        streams: 256,
        consumer: -1,
    }
}

/// The cluster's assignment key (ed25519, an nkey).
pub struct AssignmentKey(KeyPair);

impl AssignmentKey {
    pub fn public_key(&self) -> String {
        self.0.public_key()
    }

    /// Signs `bytes`; an ed25519 signature never fails to be made from a
    /// valid seed, so a failure here yields an empty (invalid) signature.
    pub fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        self.0.sign(bytes).unwrap_or_default()
    }
}

impl std::fmt::Debug for AssignmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AssignmentKey({})", self.0.public_key())
    }
}

/// Whether `signature` is the assignment key `public_key`'s over `bytes`.
pub fn verify_assignment(public_key: &str, bytes: &[u8], signature: &[u8]) -> bool {
    KeyPair::from_public_key(public_key).is_ok_and(|key| key.verify(bytes, signature).is_ok())
}

/// Where one nats-server runs, for [`ClusterDir::write_server_config`].
pub struct ServerSpec {
    pub name: String,
    pub listen: String,
    /// Names and addresses clients reach it at, for its certificate.
    pub hosts: Vec<String>,
    /// Its own directory: certificate, JetStream store, resolver.
    pub dir: PathBuf,
    pub cluster: Option<natsconf::ClusterRoutes>,
    pub max_payload: Option<usize>,
    /// `host:port` it tells clients to reach it at (None: what it finds).
    pub client_advertise: Option<String>,
}

impl ClusterDir {
    /// Creates a cluster's identity in `dir` (created if missing). Refuses a
    /// directory that already holds a cluster.
    pub fn init(dir: &Path, name: &str) -> Result<ClusterDir, TrustError> {
        reef_proto::roles::valid_user_name(name).map_err(|reason| TrustError::Name {
            name: name.to_string(),
            reason,
        })?;
        let marker = dir.join("cluster.json");
        if marker.exists() {
            return Err(TrustError::Dir {
                path: dir.to_path_buf(),
                reason: "already holds a cluster (cluster.json exists); nothing was changed".into(),
            });
        }
        let now = now();
        let operator = KeyPair::new_operator();
        let account = KeyPair::new_account();
        let signing = KeyPair::new_account();
        let system = KeyPair::new_account();
        let operator_jwt = jwt::operator(name, &operator, &system.public_key(), now)?;
        let mut reef_account = jwt::account_claims(
            "reef",
            &account.public_key(),
            vec![signing.public_key()],
            account_limits(true),
            now,
        );
        let account_jwt = jwt::encode(&mut reef_account, &operator)?;
        let mut system_account = jwt::account_claims(
            "SYS",
            &system.public_key(),
            Vec::new(),
            account_limits(false),
            now,
        );
        let system_jwt = jwt::encode(&mut system_account, &operator)?;
        let ca = pki::new_ca(name)?;

        let write = |rel: &str, bytes: &[u8], mode| files::write(&dir.join(rel), bytes, mode);
        write("operator.jwt", operator_jwt.as_bytes(), Mode::Public)?;
        write("accounts/reef.jwt", account_jwt.as_bytes(), Mode::Public)?;
        write("accounts/system.jwt", system_jwt.as_bytes(), Mode::Public)?;
        write(
            "keys/operator.nk",
            seed(&operator)?.as_bytes(),
            Mode::Private,
        )?;
        write("keys/account.nk", seed(&account)?.as_bytes(), Mode::Private)?;
        write(
            "keys/account-signing.nk",
            seed(&signing)?.as_bytes(),
            Mode::Private,
        )?;
        write("keys/system.nk", seed(&system)?.as_bytes(), Mode::Private)?;
        write("keys/ca-key.pem", ca.key_pem.as_bytes(), Mode::Private)?;
        let assign = KeyPair::new_cluster();
        write("keys/assign.nk", seed(&assign)?.as_bytes(), Mode::Private)?;
        write("tls/ca.pem", ca.cert_pem.as_bytes(), Mode::Public)?;

        let info = ClusterInfo {
            name: name.to_string(),
            operator: operator.public_key(),
            account: account.public_key(),
            account_signing_key: signing.public_key(),
            system_account: system.public_key(),
            created_at: now,
        };
        let cluster = ClusterDir {
            dir: dir.to_path_buf(),
            info,
        };
        write(
            "admin.creds",
            cluster.issue_user(Role::Admin, "admin")?.as_bytes(),
            Mode::Private,
        )?;
        write(
            "coordinator.creds",
            cluster
                .issue_user(Role::Coordinator, "coordinator")?
                .as_bytes(),
            Mode::Private,
        )?;
        write(
            "system.creds",
            cluster.issue_system_user("reef-system")?.as_bytes(),
            Mode::Private,
        )?;
        let info_json =
            serde_json::to_vec_pretty(&cluster.info).map_err(|e| TrustError::Jwt(e.to_string()))?;
        write("cluster.json", &info_json, Mode::Public)?;
        Ok(cluster)
    }

    /// Opens a cluster directory `init` wrote.
    pub fn open(dir: &Path) -> Result<ClusterDir, TrustError> {
        let path = dir.join("cluster.json");
        if !path.exists() {
            return Err(TrustError::Dir {
                path: dir.to_path_buf(),
                reason: "holds no cluster (no cluster.json): create one with `reef cluster init`"
                    .into(),
            });
        }
        let text = files::read(&path, SMALL)?;
        let info: ClusterInfo = serde_json::from_str(&text).map_err(|e| TrustError::Dir {
            path: path.clone(),
            reason: format!("not a cluster description: {e}"),
        })?;
        Ok(ClusterDir {
            dir: dir.to_path_buf(),
            info,
        })
    }

    /// The CA certificate every client trusts.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    /// Starts rotating the CA: a new CA key and certificate; from then on
    /// every certificate is signed with the new key, and `tls/ca.pem` holds
    /// the new CA first and the one it replaces after it, so that every
    /// certificate either signed is trusted. Safe to run again after a crash:
    /// a new CA made but not yet in place is used, not made again.
    pub fn rotate_ca(&self) -> Result<(), TrustError> {
        let staged_key = self.dir.join("keys/ca-key.next.pem");
        let staged_cert = self.dir.join("tls/ca.next.pem");
        if !staged_key.exists() {
            let ca = pki::new_ca(&self.info.name)?;
            files::write(&staged_cert, ca.cert_pem.as_bytes(), Mode::Public)?;
            // The key comes last: its presence says the pair is whole.
            files::write(&staged_key, ca.key_pem.as_bytes(), Mode::Private)?;
        }
        let next = files::read(&staged_cert, SMALL)?;
        let current = files::read(&self.ca_file(), SMALL)?;
        let current = first_certificate(&current).ok_or_else(|| TrustError::Dir {
            path: self.ca_file(),
            reason: "holds no certificate".into(),
        })?;
        // After a crash past this point the bundle already starts with the new one.
        let bundle = match current == first_certificate(&next).unwrap_or_default() {
            true => files::read(&self.ca_file(), SMALL)?,
            false => format!("{next}{current}"),
        };
        files::write(&self.ca_file(), bundle.as_bytes(), Mode::Public)?;
        let key = files::read_private(&staged_key, SMALL)?;
        files::write(
            &self.dir.join("keys/ca-key.pem"),
            key.as_bytes(),
            Mode::Private,
        )?;
        std::fs::remove_file(&staged_key).map_err(TrustError::io(&staged_key))?;
        std::fs::remove_file(&staged_cert).map_err(TrustError::io(&staged_cert))?;
        Ok(())
    }

    /// Ends a CA rotation: `tls/ca.pem` holds the current CA alone, so
    /// certificates the old one signed are no longer trusted.
    pub fn finish_ca_rotation(&self) -> Result<(), TrustError> {
        let bundle = files::read(&self.ca_file(), SMALL)?;
        let current = first_certificate(&bundle).ok_or_else(|| TrustError::Dir {
            path: self.ca_file(),
            reason: "holds no certificate".into(),
        })?;
        files::write(&self.ca_file(), current.as_bytes(), Mode::Public)
    }

    fn private_key(&self, rel: &str) -> Result<KeyPair, TrustError> {
        let text = files::read_private(&self.dir.join(rel), SMALL)?;
        KeyPair::from_seed(text.trim()).map_err(key_error)
    }

    /// A user JWT for the public user nkey `user`, signed by `signer`.
    fn sign_user(
        &self,
        name: &str,
        tags: Vec<String>,
        permissions: Permissions,
        signer: &KeyPair,
        issuer_account: String,
        user: &str,
    ) -> Result<String, TrustError> {
        if !user.starts_with('U') || KeyPair::from_public_key(user).is_err() {
            return Err(TrustError::Key(format!(
                "{user:?} is not a user's public nkey"
            )));
        }
        let mut claims = Claims {
            jti: String::new(),
            iat: now(),
            iss: String::new(),
            name: name.to_string(),
            sub: user.to_string(),
            exp: None,
            nats: User {
                publish: permissions.publish,
                subscribe: permissions.subscribe,
                resp: permissions.responses,
                subs: permissions.limits.subs,
                data: -1,
                payload: permissions.limits.payload,
                issuer_account,
                tags,
                kind: "user".into(),
                version: 2,
            },
        };
        jwt::encode(&mut claims, signer)
    }

    /// Credentials for a user (or the coordinators) with `role`, with a
    /// fresh key made here.
    pub fn issue_user(&self, role: Role, name: &str) -> Result<Zeroizing<String>, TrustError> {
        let key = KeyPair::new_user();
        let token = self.sign_user_key(role, name, &key.public_key())?;
        Ok(creds::render(&token, &seed(&key)?))
    }

    /// A user JWT with `role` for the public key `user`: its seed stays
    /// wherever it was made.
    pub fn sign_user_key(&self, role: Role, name: &str, user: &str) -> Result<String, TrustError> {
        reef_proto::roles::valid_user_name(name).map_err(|reason| TrustError::Name {
            name: name.to_string(),
            reason,
        })?;
        let permissions = match role {
            Role::Coordinator => permissions::coordinator(name),
            Role::Node => {
                return Err(TrustError::Name {
                    name: name.to_string(),
                    reason: "nodes get credentials by joining, not as users".into(),
                })
            }
            role => permissions::user(role, name),
        };
        self.sign_user(
            name,
            vec![format!("role:{role}")],
            permissions,
            &self.private_key("keys/account-signing.nk")?,
            self.info.account.clone(),
            user,
        )
    }

    /// Credentials for app `app` on the cluster's NATS (`[services.nats]`),
    /// with a fresh key made here: the `.creds` text and its public key.
    pub fn issue_app(&self, app: &str) -> Result<(Zeroizing<String>, String), TrustError> {
        reef_proto::manifest::validate_app_name(app).map_err(|reason| TrustError::Name {
            name: app.to_string(),
            reason,
        })?;
        let key = KeyPair::new_user();
        let token = self.sign_user(
            app,
            vec![
                format!("role:{}", reef_proto::members::APP_ROLE),
                format!("app:{app}"),
            ],
            permissions::app(app),
            &self.private_key("keys/account-signing.nk")?,
            self.info.account.clone(),
            &key.public_key(),
        )?;
        Ok((creds::render(&token, &seed(&key)?), key.public_key()))
    }

    /// The certificate of node `node` for the peer links, for the P-256
    /// `public_key` the node made (see [`pki::peer_cert`]).
    pub fn issue_peer_cert(
        &self,
        node: NodeId,
        public_key: &[u8],
    ) -> Result<pki::PeerCert, TrustError> {
        let ca_key = files::read_private(&self.dir.join("keys/ca-key.pem"), SMALL)?;
        pki::peer_cert(
            &self.info.name,
            &ca_key,
            &reef_proto::node::peer_name(node),
            public_key,
        )
    }

    /// Credentials for the node `node`, its trust class written into them,
    /// with a fresh key made here.
    pub fn issue_node(
        &self,
        node: NodeId,
        trust: NodeTrust,
    ) -> Result<Zeroizing<String>, TrustError> {
        let key = KeyPair::new_user();
        let token = self.sign_node_key(node, trust, &key.public_key())?;
        Ok(creds::render(&token, &seed(&key)?))
    }

    /// A node JWT for the public key `user`.
    pub fn sign_node_key(
        &self,
        node: NodeId,
        trust: NodeTrust,
        user: &str,
    ) -> Result<String, TrustError> {
        self.sign_node_key_with_labels(node, trust, user, &BTreeMap::new())
    }

    /// A node JWT for the public key `user`, with the node's labels in it
    /// (they win over the ones its agent is started with).
    pub fn sign_node_key_with_labels(
        &self,
        node: NodeId,
        trust: NodeTrust,
        user: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, TrustError> {
        let trust_tag = match trust {
            NodeTrust::Dedicated => "trust:dedicated",
            NodeTrust::Contributed => "trust:contributed",
        };
        let mut tags = vec![
            "role:node".into(),
            format!("node:{node}"),
            trust_tag.into(),
            format!("assign:{}", self.assignment_key()?.public_key()),
        ];
        tags.extend(labels.iter().map(|(k, v)| format!("label:{k}={v}")));
        self.sign_user(
            &node.to_string(),
            tags,
            permissions::node(node, trust),
            &self.private_key("keys/account-signing.nk")?,
            self.info.account.clone(),
            user,
        )
    }

    /// A join token's credential for token `id`, expiring at `expires_at_s`:
    /// the `.creds` text and its public key.
    /// A server token's (`server`) may also join as a server.
    pub fn issue_joiner(
        &self,
        id: &str,
        expires_at_s: u64,
        server: bool,
    ) -> Result<(Zeroizing<String>, String), TrustError> {
        let key = KeyPair::new_user();
        let signer = self.private_key("keys/account-signing.nk")?;
        let permissions = permissions::joiner(id, server);
        let mut claims = Claims {
            jti: String::new(),
            iat: now(),
            iss: String::new(),
            name: id.to_string(),
            sub: key.public_key(),
            exp: Some(expires_at_s),
            nats: User {
                publish: permissions.publish,
                subscribe: permissions.subscribe,
                resp: None,
                subs: permissions.limits.subs,
                data: -1,
                payload: permissions.limits.payload,
                issuer_account: self.info.account.clone(),
                tags: vec!["role:joiner".into()],
                kind: "user".into(),
                version: 2,
            },
        };
        let token = jwt::encode(&mut claims, &signer)?;
        Ok((creds::render(&token, &seed(&key)?), key.public_key()))
    }

    /// The key the leader signs every command to a node with
    /// (`keys/assign.nk`), made on first use. Nodes learn its public half
    /// from their credentials.
    pub fn assignment_key(&self) -> Result<AssignmentKey, TrustError> {
        let path = self.dir.join("keys/assign.nk");
        if !path.exists() {
            // Made once: of several processes racing here, the first wins
            // and the others read its key.
            let key = KeyPair::new_cluster();
            files::write_new(&path, seed(&key)?.as_bytes())?;
        }
        Ok(AssignmentKey(self.private_key("keys/assign.nk")?))
    }

    /// The reef account's JWT, signed again by the operator, with
    /// `revocations` (user public key → JWTs it issued at or before this
    /// second are refused). Pushed to the servers, it disconnects those users.
    pub fn account_jwt(&self, revocations: &BTreeMap<String, u64>) -> Result<String, TrustError> {
        let operator = self.private_key("keys/operator.nk")?;
        let mut claims = jwt::account_claims(
            "reef",
            &self.info.account,
            vec![self.info.account_signing_key.clone()],
            account_limits(true),
            now(),
        );
        claims.nats.revocations = revocations.clone();
        jwt::encode(&mut claims, &operator)
    }

    /// A user of the system account, which may push account updates.
    fn issue_system_user(&self, name: &str) -> Result<Zeroizing<String>, TrustError> {
        let system = self.private_key("keys/system.nk")?;
        let key = KeyPair::new_user();
        let token = self.sign_user(
            name,
            vec!["role:system".into()],
            Permissions {
                publish: jwt::Permission::default(),
                subscribe: jwt::Permission::default(),
                responses: None,
                limits: permissions::Limits::NONE,
            },
            &system,
            String::new(),
            &key.public_key(),
        )?;
        Ok(creds::render(&token, &seed(&key)?))
    }

    /// Writes a server's certificate and configuration under `spec.dir`;
    /// returns the configuration's path.
    pub fn write_server_config(&self, spec: ServerSpec) -> Result<PathBuf, TrustError> {
        let ca_key = files::read_private(&self.dir.join("keys/ca-key.pem"), SMALL)?;
        let cert = pki::server_cert(&self.info.name, &ca_key, &spec.name, &spec.hosts)?;
        let cert_file = spec.dir.join("server.pem");
        let key_file = spec.dir.join("server-key.pem");
        let ca_file = spec.dir.join("ca.pem");
        files::write(&cert_file, cert.cert_pem.as_bytes(), Mode::Public)?;
        files::write(&key_file, cert.key_pem.as_bytes(), Mode::Private)?;
        let ca_pem = files::read(&self.ca_file(), SMALL)?;
        files::write(&ca_file, ca_pem.as_bytes(), Mode::Public)?;
        let config = natsconf::ServerConfig {
            name: spec.name,
            listen: spec.listen,
            store_dir: spec.dir.join("jetstream"),
            resolver_dir: spec.dir.join("accounts"),
            pid_file: spec.dir.join("nats-server.pid"),
            operator_jwt: files::read(&self.dir.join("operator.jwt"), SMALL)?
                .trim()
                .to_string(),
            system_account: self.info.system_account.clone(),
            accounts: vec![
                (
                    self.info.account.clone(),
                    files::read(&self.dir.join("accounts/reef.jwt"), SMALL)?
                        .trim()
                        .to_string(),
                ),
                (
                    self.info.system_account.clone(),
                    files::read(&self.dir.join("accounts/system.jwt"), SMALL)?
                        .trim()
                        .to_string(),
                ),
            ],
            cert_file,
            key_file,
            ca_file,
            cluster: spec.cluster,
            max_payload: spec.max_payload,
            client_advertise: spec.client_advertise,
        };
        let path = spec.dir.join("nats.conf");
        files::write(&path, natsconf::render(&config).as_bytes(), Mode::Private)?;
        Ok(path)
    }
}

/// The first PEM certificate block of `pem`, with its end line.
fn first_certificate(pem: &str) -> Option<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find("-----BEGIN CERTIFICATE-----")?;
    let end = pem[start..].find(END)? + start + END.len();
    Some(format!("{}\n", &pem[start..end]))
}
