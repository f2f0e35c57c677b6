//! A real Elixir release for the `type = "beam"` tests: a tiny app whose
//! Application starts Erlang's `:inets` httpd on `PORT`, built with
//! `MIX_ENV=prod mix release` from Debian's `elixir` and `erlang` packages
//! (no hex packages, no network).
//!
//! It answers `/env/NAME` with a variable, anything else with
//! `<VERSION> <node> <release version>` (`VERSION` from the manifest's
//! `[env]`, so two deploys of the same build tell themselves apart).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const MIX_EXS: &str = r#"defmodule Hello.MixProject do
  use Mix.Project

  def project, do: [app: :hello, version: "0.1.0", elixir: "~> 1.14", deps: []]

  def application,
    do: [extra_applications: [:logger, :inets], mod: {Hello.Application, []}]
end
"#;

const HELLO_EX: &str = r##"defmodule Hello.Application do
  @moduledoc false
  use Application

  def start(_type, _args) do
    port = String.to_integer(System.fetch_env!("PORT"))
    root = String.to_charlist(System.get_env("RELEASE_TMP", "/tmp"))

    {:ok, _} =
      :inets.start(:httpd,
        port: port,
        bind_address: {127, 0, 0, 1},
        server_name: 'hello',
        server_root: root,
        document_root: root,
        modules: [Hello.Web]
      )

    Supervisor.start_link([], strategy: :one_for_one, name: Hello.Supervisor)
  end
end

defmodule Hello.Web do
  @moduledoc false
  # An inets httpd callback module; element 8 of the request is its URI.
  def unquote(:do)(request) do
    path = List.to_string(elem(request, 8))

    body =
      case path do
        "/env/" <> name -> System.get_env(name, "")
        _ -> "#{System.get_env("VERSION", "-")} #{node()} #{Application.spec(:hello, :vsn)}\n"
      end

    {:proceed, [{:response, {200, String.to_charlist(body)}}]}
  end
end
"##;

/// The release directory (`bin/hello`, `erts-*`, `lib`, `releases`), built
/// once per test binary.
pub fn release() -> &'static Path {
    static RELEASE: OnceLock<PathBuf> = OnceLock::new();
    RELEASE.get_or_init(|| build().expect("building the Elixir release"))
}

/// Builds the release in a temp dir with a home of its own; kept under the
/// system temp dir, named by its sources, so later runs reuse it.
fn build() -> anyhow::Result<PathBuf> {
    let sources = format!("{MIX_EXS}{HELLO_EX}");
    let digest = reef_artifact::sha256_hex(sources.as_bytes())?;
    let done = std::env::temp_dir().join(format!("reef-beam-release-{}", &digest[..16]));
    if done.join("bin/hello").is_file() {
        return Ok(done);
    }
    let work = tempfile::Builder::new()
        .prefix("reef-beam-build")
        .tempdir_in(std::env::temp_dir())?;
    let project = work.path().join("hello");
    std::fs::create_dir_all(project.join("lib"))?;
    std::fs::write(project.join("mix.exs"), MIX_EXS)?;
    std::fs::write(project.join("lib/hello.ex"), HELLO_EX)?;
    for dir in ["home", "mix", "hex"] {
        std::fs::create_dir_all(work.path().join(dir))?;
    }
    let out = Command::new("mix")
        .args(["release", "--overwrite"])
        .current_dir(&project)
        .env("MIX_ENV", "prod")
        .env("HOME", work.path().join("home"))
        .env("MIX_HOME", work.path().join("mix"))
        .env("HEX_HOME", work.path().join("hex"))
        .env("HEX_OFFLINE", "1")
        .output()
        .map_err(|e| anyhow::anyhow!("running mix (Debian's elixir package): {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "mix release failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let built = project.join("_build/prod/rel/hello");
    // Another test binary may have finished first; either copy will do.
    match std::fs::rename(&built, &done) {
        Ok(()) => Ok(done),
        Err(_) if done.join("bin/hello").is_file() => Ok(done),
        Err(e) => Err(e.into()),
    }
}

/// Writes app `name` (the release, and a Reef.toml with `type = "beam"`,
/// serving `<name>.test`, `VERSION = version`) into `dir`, with extra
/// `[deploy]` lines. The VM's own memory is more than the default limit.
pub fn write_beam_app(dir: &Path, name: &str, version: &str, deploy: &str) {
    let release = release();
    std::fs::create_dir_all(dir).expect("mkdir");
    let status = Command::new("cp")
        .arg("-a")
        .arg(release.join("."))
        .arg(dir)
        .status()
        .expect("cp");
    assert!(status.success(), "copying the release");
    let manifest = format!(
        "[app]\nname = {name:?}\ndomains = [\"{name}.test\"]\n\n[deploy]\ntype = \"beam\"\nrelease = \"hello\"\nhealth_interval = \"50ms\"\nhealth_attempts = 400\ndrain = 2\n{deploy}\n[resources]\nmemory = \"512M\"\n\n[env]\nVERSION = {version:?}\n"
    );
    std::fs::write(dir.join("Reef.toml"), manifest).expect("write manifest");
}
