//! Who may call which API verb. A caller's role and name travel in the API
//! subject (`reef.api.<role>.<caller>.<verb>`), and the NATS server lets
//! each credential publish only under its own role and name, so the
//! coordinator learns who calls from a fact the server enforced.

use crate::subjects::verbs;

/// A credential's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everything.
    Admin,
    /// Apps, their releases, secrets (write and list, never read back) and logs.
    Deployer,
    /// Jobs: submit, see, stop, and their logs.
    Submitter,
    /// Read-only.
    Viewer,
    /// An agent: registers itself and reports its own work.
    Node,
    /// A coordinator: the control plane.
    Coordinator,
    /// A join token's short-lived credential: may only ask to join, once.
    Joiner,
}

impl Role {
    /// Every role a person can be given with `reef user add`.
    pub const USERS: [Role; 4] = [Role::Admin, Role::Deployer, Role::Submitter, Role::Viewer];

    /// The role's name, as in subjects, JWT tags and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Deployer => "deployer",
            Role::Submitter => "submitter",
            Role::Viewer => "viewer",
            Role::Node => "node",
            Role::Coordinator => "coordinator",
            Role::Joiner => "joiner",
        }
    }

    pub fn parse(input: &str) -> Result<Role, String> {
        match input {
            "admin" => Ok(Role::Admin),
            "deployer" => Ok(Role::Deployer),
            "submitter" => Ok(Role::Submitter),
            "viewer" => Ok(Role::Viewer),
            "node" => Ok(Role::Node),
            "coordinator" => Ok(Role::Coordinator),
            "joiner" => Ok(Role::Joiner),
            _ => Err(format!(
                "unknown role {input:?}: expected admin, deployer, submitter, viewer, node or coordinator"
            )),
        }
    }

    /// Whether this role may call `verb`.
    pub fn may_call(self, verb: &str) -> bool {
        use verbs::*;
        const READ: &[&str] = &[
            JOB_LIST,
            JOB_GET,
            NODE_LIST,
            APP_LIST,
            APP_STATUS,
            APP_RELEASES,
            SECRET_LIST,
            CERT_LIST,
            SERVER_LIST,
            CRON_LIST,
            CRON_HISTORY,
            APP_BACKUPS,
            UI_LINK,
        ];
        match self {
            Role::Admin => verbs::ALL.contains(&verb),
            Role::Viewer => READ.contains(&verb),
            Role::Deployer => {
                READ.contains(&verb)
                    || verb.starts_with("app.")
                    || [SECRET_SET, SECRET_REMOVE].contains(&verb)
            }
            // Periodic jobs are jobs: a submitter adds its own, and sees and
            // removes only those.
            Role::Submitter => [
                JOB_SUBMIT,
                JOB_LIST,
                JOB_GET,
                JOB_STOP,
                NODE_LIST,
                CRON_ADD,
                CRON_LIST,
                CRON_HISTORY,
                CRON_REMOVE,
                UI_LINK,
            ]
            .contains(&verb),
            Role::Node => [NODE_REGISTER, NODE_CERTIFICATE].contains(&verb),
            Role::Coordinator => false,
            // Which joiner may call `server.join` is the NATS server's to
            // enforce: only a server token's credential may publish there.
            Role::Joiner => [NODE_JOIN, SERVER_JOIN].contains(&verb),
        }
    }

    /// The least-powerful user role that may call `verb`, for the answer to
    /// a refused call.
    pub fn needed_for(verb: &str) -> Role {
        [Role::Viewer, Role::Submitter, Role::Deployer, Role::Admin]
            .into_iter()
            .find(|role| role.may_call(verb))
            .unwrap_or(Role::Admin)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `name` can be a user's name: it is a subject token and a JWT
/// name, so 1 to 64 of lowercase letters, digits, `-` and `_`.
pub fn valid_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("user name {name:?} must be 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "user name {name:?} may hold only lowercase letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_has_a_user_role_and_only_admin_has_them_all() {
        for verb in verbs::ALL {
            assert!(Role::Admin.may_call(verb), "{verb}");
            let needed = Role::needed_for(verb);
            assert!(needed.may_call(verb), "{verb}");
        }
        for role in [Role::Deployer, Role::Submitter, Role::Viewer, Role::Node] {
            assert!(verbs::ALL.iter().any(|v| !role.may_call(v)), "{role}");
        }
        assert!(!Role::Coordinator.may_call(verbs::JOB_SUBMIT));
        assert!(!Role::Admin.may_call("job.submit.extra"));
    }

    #[test]
    fn the_table_is_the_documented_one() {
        use verbs::*;
        assert!(Role::Viewer.may_call(APP_STATUS));
        assert!(!Role::Viewer.may_call(APP_DEPLOY));
        assert!(!Role::Viewer.may_call(JOB_SUBMIT));
        assert!(Role::Deployer.may_call(APP_DESTROY));
        assert!(Role::Deployer.may_call(SECRET_SET));
        assert!(!Role::Deployer.may_call(NODE_DRAIN));
        assert!(!Role::Deployer.may_call(CERT_ADD));
        assert!(!Role::Deployer.may_call(JOB_SUBMIT));
        assert!(Role::Submitter.may_call(JOB_STOP));
        assert!(!Role::Submitter.may_call(APP_DEPLOY));
        assert!(!Role::Submitter.may_call(SECRET_LIST));
        assert!(Role::Node.may_call(NODE_REGISTER));
        assert!(Role::Node.may_call(NODE_CERTIFICATE));
        assert!(!Role::Deployer.may_call(NODE_CERTIFICATE));
        assert!(!Role::Joiner.may_call(NODE_CERTIFICATE));
        assert!(!Role::Node.may_call(NODE_LIST));
        assert!(!Role::Deployer.may_call(NODE_REGISTER));
        assert!(Role::Joiner.may_call(NODE_JOIN));
        assert!(!Role::Joiner.may_call(NODE_REGISTER));
        assert!(!Role::Node.may_call(NODE_JOIN));
        assert!(Role::Joiner.may_call(SERVER_JOIN));
        assert!(!Role::Node.may_call(SERVER_JOIN));
        assert!(!Role::Deployer.may_call(SERVER_JOIN));
        assert!(Role::Viewer.may_call(SERVER_LIST));
        assert!(!Role::Deployer.may_call(TOKEN_CREATE));
        assert_eq!(Role::needed_for(NODE_DRAIN), Role::Admin);
        assert_eq!(Role::needed_for(APP_DEPLOY), Role::Deployer);
        assert_eq!(Role::needed_for(JOB_SUBMIT), Role::Submitter);
        assert_eq!(Role::needed_for(APP_LIST), Role::Viewer);
        assert!(Role::Deployer.may_call(APP_MAINTENANCE));
        assert!(!Role::Viewer.may_call(APP_MAINTENANCE));
        assert!(!Role::Submitter.may_call(APP_MAINTENANCE));
        assert_eq!(Role::needed_for(APP_MAINTENANCE), Role::Deployer);
        assert!(Role::Deployer.may_call(APP_BACKUP));
        assert!(Role::Deployer.may_call(APP_RESTORE));
        assert!(!Role::Viewer.may_call(APP_BACKUP));
        assert!(!Role::Viewer.may_call(APP_RESTORE));
        assert!(!Role::Submitter.may_call(APP_BACKUPS));
        assert_eq!(Role::needed_for(APP_BACKUPS), Role::Viewer);
    }

    #[test]
    fn names_round_trip_and_bad_ones_are_refused() {
        for role in Role::USERS
            .into_iter()
            .chain([Role::Node, Role::Coordinator, Role::Joiner])
        {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert!(Role::parse("root").is_err());
        assert!(valid_user_name("ci-bot_2").is_ok());
        for bad in ["", "Alice", "a.b", "a*", "a>", "a b", &"x".repeat(65)] {
            assert!(valid_user_name(bad).is_err(), "{bad:?}");
        }
    }
}
