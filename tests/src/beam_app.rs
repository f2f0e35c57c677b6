//! Real Erlang/Elixir releases for the `type = "beam"` tests: a tiny app
//! whose application starts Erlang's `inets` httpd on `PORT`, built with
//! `MIX_ENV=prod mix release` (Elixir) or `rebar3 as prod release` (Erlang,
//! relx) from Debian's `elixir`, `erlang` and `rebar3` packages (no hex
//! packages, no network).
//!
//! It answers `/env/NAME` with a variable, anything else with
//! `<VERSION> <node> ...` (`VERSION` from the manifest's `[env]`, so two
//! deploys of the same build tell themselves apart).

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

const REBAR_CONFIG: &str = r#"{erl_opts, []}.
{deps, []}.
{relx, [{release, {hi, "0.1.0"}, [hi, sasl]}, {mode, prod}]}.
"#;

const HI_APP_SRC: &str = r#"{application, hi, [{vsn, "0.1.0"}, {registered, []}, {mod, {hi_app, []}},
  {applications, [kernel, stdlib, inets]}, {env, []}]}.
"#;

const HI_APP_ERL: &str = r#"-module(hi_app).
-behaviour(application).
-export([start/2, stop/1, init/1, do/1]).
-include_lib("inets/include/httpd.hrl").

start(_Type, _Args) ->
    Port = list_to_integer(os:getenv("PORT")),
    Root = os:getenv("RELEASE_TMP", "/tmp"),
    {ok, _} = inets:start(httpd, [{port, Port}, {bind_address, {127, 0, 0, 1}},
        {server_name, "hi"}, {server_root, Root}, {document_root, Root},
        {modules, [?MODULE]}]),
    supervisor:start_link(?MODULE, []).

stop(_State) -> ok.

init([]) -> {ok, {#{}, []}}.

%% An inets httpd callback: `/env/NAME` answers a variable, anything else
%% `<VERSION> <node> relx`.
do(#mod{request_uri = "/env/" ++ Name}) ->
    {proceed, [{response, {200, os:getenv(Name, "")}}]};
do(_) ->
    Body = io_lib:format("~s ~s relx~n", [os:getenv("VERSION", "-"), node()]),
    {proceed, [{response, {200, lists:flatten(Body)}}]}.
"#;

/// Which tool makes a release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// `MIX_ENV=prod mix release` of an Elixir app: `bin/hello start`.
    Mix,
    /// `rebar3 as prod release` of an Erlang app (relx): `bin/hi foreground`.
    Rebar3,
}

impl Tool {
    /// The release's name (`bin/<name>`).
    pub fn release_name(self) -> &'static str {
        match self {
            Tool::Mix => "hello",
            Tool::Rebar3 => "hi",
        }
    }

    /// The manifest lines that run it.
    fn deploy_lines(self) -> &'static str {
        match self {
            Tool::Mix => "release = \"hello\"\n",
            Tool::Rebar3 => "release = \"hi\"\nbeam_command = \"foreground\"\n",
        }
    }

    fn sources(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Tool::Mix => vec![("mix.exs", MIX_EXS), ("lib/hello.ex", HELLO_EX)],
            Tool::Rebar3 => vec![
                ("rebar.config", REBAR_CONFIG),
                ("src/hi.app.src", HI_APP_SRC),
                ("src/hi_app.erl", HI_APP_ERL),
            ],
        }
    }
}

/// The release directory (`bin/<name>`, `erts-*`, `lib`, `releases`), built
/// once per test binary.
pub fn release(tool: Tool) -> &'static Path {
    static MIX: OnceLock<PathBuf> = OnceLock::new();
    static REBAR3: OnceLock<PathBuf> = OnceLock::new();
    let cell = match tool {
        Tool::Mix => &MIX,
        Tool::Rebar3 => &REBAR3,
    };
    cell.get_or_init(|| {
        build(tool).unwrap_or_else(|e| panic!("building the {tool:?} release: {e:#}"))
    })
}

/// Builds the release in a temp dir with a home of its own; kept under the
/// system temp dir, named by its sources, so later runs reuse it.
fn build(tool: Tool) -> anyhow::Result<PathBuf> {
    let sources = tool.sources();
    let all: String = sources
        .iter()
        .map(|(path, text)| format!("{path}\n{text}"))
        .collect();
    let digest = reef_artifact::sha256_hex(all.as_bytes())?;
    let name = tool.release_name();
    let done = std::env::temp_dir().join(format!("reef-beam-release-{}", &digest[..16]));
    let launcher = format!("bin/{name}");
    if done.join(&launcher).is_file() {
        return Ok(done);
    }
    let work = tempfile::Builder::new()
        .prefix("reef-beam-build")
        .tempdir_in(std::env::temp_dir())?;
    let project = work.path().join(name);
    for (path, text) in &sources {
        let path = project.join(path);
        std::fs::create_dir_all(path.parent().expect("a file in the project"))?;
        std::fs::write(path, text)?;
    }
    for dir in ["home", "mix", "hex"] {
        std::fs::create_dir_all(work.path().join(dir))?;
    }
    let mut command = match tool {
        Tool::Mix => {
            let mut mix = Command::new("mix");
            mix.args(["release", "--overwrite"]).env("MIX_ENV", "prod");
            mix
        }
        Tool::Rebar3 => {
            let mut rebar3 = Command::new("rebar3");
            rebar3.args(["as", "prod", "release"]);
            rebar3
        }
    };
    let out = command
        .current_dir(&project)
        .env("HOME", work.path().join("home"))
        .env("MIX_HOME", work.path().join("mix"))
        .env("HEX_HOME", work.path().join("hex"))
        .env("HEX_OFFLINE", "1")
        .output()
        .map_err(|e| {
            anyhow::anyhow!("running {tool:?} (Debian's elixir, erlang and rebar3 packages): {e}")
        })?;
    anyhow::ensure!(
        out.status.success(),
        "{tool:?} release failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let built = project.join("_build/prod/rel").join(name);
    // Another test binary may have finished first; either copy will do.
    match std::fs::rename(&built, &done) {
        Ok(()) => Ok(done),
        Err(_) if done.join(&launcher).is_file() => Ok(done),
        Err(e) => Err(e.into()),
    }
}

/// Writes app `name` (the release, and a Reef.toml with `type = "beam"`,
/// serving `<name>.test`, `VERSION = version`) into `dir`, with extra
/// `[deploy]` lines. The VM's own memory is more than the default limit.
pub fn write_beam_app(dir: &Path, tool: Tool, name: &str, version: &str, deploy: &str) {
    let release = release(tool);
    std::fs::create_dir_all(dir).expect("mkdir");
    let status = Command::new("cp")
        .arg("-a")
        .arg(release.join("."))
        .arg(dir)
        .status()
        .expect("cp");
    assert!(status.success(), "copying the release");
    let manifest = format!(
        "[app]\nname = {name:?}\ndomains = [\"{name}.test\"]\n\n[deploy]\ntype = \"beam\"\n{}health_interval = \"50ms\"\nhealth_attempts = 400\ndrain = 2\n{deploy}\n[resources]\nmemory = \"512M\"\n\n[env]\nVERSION = {version:?}\n",
        tool.deploy_lines()
    );
    std::fs::write(dir.join("Reef.toml"), manifest).expect("write manifest");
}
