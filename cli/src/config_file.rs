//! Config files for the long-running commands (`reef server --config
//! /etc/reef/server.toml`, `reef agent --config /etc/reef/agent.toml`,
//! `reef coordinator --config ...`). A file's fields are the command's own
//! flags, named with `_` for `-` (`node_grace = "5s"`, `allow_workdir =
//! ["/srv/data"]`, `allow_network = true`); each value goes through the
//! flag's own parser, so a file accepts exactly what the command line does.
//! A flag given on the command line (or by its environment variable) wins
//! over the file; an unknown field, a field of the wrong type or a value the
//! flag refuses is an error that names the file and the field.
//!
//! The file becomes flags: [`expand`] adds them to the command line before
//! clap parses it, so one set of definitions, defaults and checks serves
//! both. [`render`] writes such a file from the flags a command was given
//! (`reef join` writes the agent's).

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The commands that take `--config FILE`.
const WITH_CONFIG: &[&str] = &["server", "agent", "coordinator"];

/// Flags no file may set.
const NOT_IN_FILES: &[&str] = &["config", "help", "version"];

/// `argv` with the flags from the file named by the command's `--config`
/// added, or unchanged when there is none. `read` reads the file.
pub fn expand(
    cli: &Command,
    argv: Vec<OsString>,
    read: impl Fn(&Path) -> std::io::Result<String>,
) -> Result<Vec<OsString>, String> {
    let mut cli = cli.clone().ignore_errors(true);
    // Global flags (--nats, --creds, --nats-ca) become the subcommands' too.
    cli.build();
    // Help, version and malformed command lines are the real parse's to report.
    let Ok(matches) = cli.clone().try_get_matches_from(&argv) else {
        return Ok(argv);
    };
    let Some((name, sub)) = matches.subcommand() else {
        return Ok(argv);
    };
    if !WITH_CONFIG.contains(&name) || sub.subcommand().is_some() {
        return Ok(argv);
    }
    let Ok(Some(path)) = sub.try_get_one::<PathBuf>("config") else {
        return Ok(argv);
    };
    let Some(command) = cli.find_subcommand(name) else {
        return Ok(argv);
    };
    let text = read(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let given = |id: &str| {
        matches!(
            sub.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let mut expanded = argv;
    expanded.extend(file_args(command, &given, &text, path)?);
    Ok(expanded)
}

/// The flags the file `text` (at `path`, for messages) sets for `command`,
/// leaving out those `given` says the command line already has.
pub fn file_args(
    command: &Command,
    given: &dyn Fn(&str) -> bool,
    text: &str,
    path: &Path,
) -> Result<Vec<OsString>, String> {
    let file = path.display();
    let table: toml::Table = toml::from_str(text).map_err(|e| format!("{file}: {e}"))?;
    let mut out = Vec::new();
    for (field, value) in &table {
        let arg = settable(command, field).ok_or_else(|| unknown(command, field, &file))?;
        if given(arg.get_id().as_str()) {
            continue;
        }
        let long = arg.get_long().unwrap_or_default();
        let wrong = |expected: &str| {
            format!(
                "{file}: field `{field}`: expected {expected}, found {}",
                value.type_str()
            )
        };
        let values: Vec<String> = match (arg.get_action(), value) {
            (ArgAction::SetTrue, toml::Value::Boolean(on)) => {
                if *on {
                    out.push(OsString::from(format!("--{long}")));
                }
                continue;
            }
            (ArgAction::SetTrue, _) => return Err(wrong("true or false")),
            (ArgAction::Append, toml::Value::Array(items)) => items
                .iter()
                .map(|item| scalar(item).ok_or_else(|| wrong("an array of strings or numbers")))
                .collect::<Result<_, _>>()?,
            (ArgAction::Set | ArgAction::Append, item) => {
                vec![scalar(item).ok_or_else(|| wrong("a string or a number"))?]
            }
            _ => return Err(unknown(command, field, &file)),
        };
        for value in values {
            check(arg, long, &value)
                .map_err(|e| format!("{file}: field `{field}`: {}", clap_message(&e)))?;
            out.push(OsString::from(format!("--{long}={value}")));
        }
    }
    Ok(out)
}

/// Whether `arg`'s own parser takes `value`.
fn check(arg: &Arg, long: &str, value: &str) -> Result<(), clap::Error> {
    let alone = Arg::new("value")
        .long(long.to_string())
        .value_names(arg.get_value_names().unwrap_or_default().to_vec())
        .value_parser(arg.get_value_parser().clone())
        .action(ArgAction::Set);
    Command::new("reef")
        .arg(alone)
        .try_get_matches_from([
            OsString::from("reef"),
            OsString::from(format!("--{long}={value}")),
        ])
        .map(drop)
}

/// The flag a file's `field` sets: one with a long name, not a positional.
fn settable<'a>(command: &'a Command, field: &str) -> Option<&'a Arg> {
    if field.contains('-') {
        return None;
    }
    let long = field.replace('_', "-");
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long.as_str()))
        .filter(|arg| !NOT_IN_FILES.contains(&long.as_str()) && !arg.is_positional())
}

/// The fields a file for `command` may have (hidden flags, for tests, are
/// taken too but not listed).
pub fn fields(command: &Command) -> Vec<String> {
    command
        .get_arguments()
        .filter(|arg| !arg.is_hide_set())
        .filter_map(Arg::get_long)
        .filter(|long| !NOT_IN_FILES.contains(long))
        .map(|long| long.replace('-', "_"))
        .collect()
}

fn unknown(command: &Command, field: &str, file: &impl std::fmt::Display) -> String {
    let hint = if field.contains('-') {
        format!(
            " (fields use `_` where flags use `-`: `{}`)",
            field.replace('-', "_")
        )
    } else {
        String::new()
    };
    format!(
        "{file}: unknown field `{field}`{hint}; the fields of a `reef {}` file are: {}",
        command.get_name(),
        fields(command).join(", ")
    )
}

/// A string or number field as the text its flag would get.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A clap error's first line, without clap's `error: ` and usage.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// A config file setting every flag of `ids` that `matches` got from the
/// command line, as `expand` reads it back.
pub fn render(matches: &ArgMatches, command: &Command, ids: &[&str]) -> String {
    let mut out = String::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else { continue };
        if !ids.contains(&id) || matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let field = long.replace('-', "_");
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            out.push_str(&format!("{field} = true\n"));
            continue;
        }
        let values: Vec<String> = matches
            .get_raw(id)
            .into_iter()
            .flatten()
            .map(|raw| quote(&raw.to_string_lossy()))
            .collect();
        match arg.get_action() {
            ArgAction::Append => out.push_str(&format!("{field} = [{}]\n", values.join(", "))),
            _ => {
                if let Some(value) = values.last() {
                    out.push_str(&format!("{field} = {value}\n"));
                }
            }
        }
    }
    out
}

/// A TOML basic string: JSON's escapes are TOML's.
pub fn quote(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

#[cfg(test)]
#[path = "config_file_tests.rs"]
mod tests;
