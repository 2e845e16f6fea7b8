//! The packaging (issue 13, "Packaging"; README "Deployment"), checked without docker or a
//! registry: the `Dockerfile` through hadolint and BuildKit's own parser (both from the test
//! Python environment, `tests/deploy/requirements.txt`), the libraries the binary links against
//! the runtime stage's packages, `deploy/csc-server.service` through `systemd-analyze verify`
//! and `security`, `deploy/compose.yaml` through the Compose specification's types
//! (`compose_spec`), and every setting, environment variable and command line the deploy files
//! use against the server's own (`config::ENV_KEYS`, the TOML loader, `csc-server ... --help`).
//! Last, `csc-server health`, the image's HEALTHCHECK, against a live and a dead server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{self, BIN};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// A tool of the test Python environment (`CSC_TEST_PYTHON`, made by `scripts/test`).
fn venv(tool: &str) -> PathBuf {
    let python = std::env::var("CSC_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "CSC_TEST_PYTHON is not set: run scripts/test, which makes the Python environment \
             (hadolint, BuildKit's Dockerfile parser) from tests/*/requirements.txt"
        )
    });
    if tool == "python" {
        return PathBuf::from(python);
    }
    Path::new(&python)
        .parent()
        .expect("the environment's bin directory")
        .join(tool)
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One instruction of the Dockerfile as BuildKit's parser reads it.
#[derive(Debug, serde::Deserialize)]
struct Instruction {
    cmd: String,
    flags: Vec<String>,
    value: Vec<String>,
    json: bool,
}

/// The Dockerfile's instructions, by BuildKit's parser (the `dockerfile` package wraps
/// moby/buildkit's Go parser), grouped by stage.
fn dockerfile_stages() -> Vec<Vec<Instruction>> {
    let script = "import dockerfile, json, sys\n\
                  print(json.dumps([{'cmd': c.cmd, 'flags': list(c.flags), 'value': list(c.value), \
                  'json': c.json} for c in dockerfile.parse_file(sys.argv[1])]))";
    let (ok, out, err) = run(Command::new(venv("python"))
        .args(["-c", script])
        .arg(repo().join("Dockerfile")));
    assert!(ok, "BuildKit's parser refused the Dockerfile: {err}");
    let all: Vec<Instruction> = serde_json::from_str(&out).expect("the parser's JSON");
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for i in all {
        if i.cmd == "FROM" {
            stages.push(Vec::new());
        }
        if let Some(stage) = stages.last_mut() {
            stage.push(i);
        }
    }
    stages
}

fn one<'a>(stage: &'a [Instruction], cmd: &str) -> &'a Instruction {
    let found: Vec<_> = stage.iter().filter(|i| i.cmd == cmd).collect();
    assert_eq!(found.len(), 1, "exactly one {cmd} in the runtime stage");
    found[0]
}

/// The runtime stage's ENV as a map.
fn image_env(stage: &[Instruction]) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for i in stage.iter().filter(|i| i.cmd == "ENV") {
        for pair in i.value.chunks(2) {
            env.insert(pair[0].clone(), pair[1].clone());
        }
    }
    env
}

/// The packages the runtime stage installs (`apt-get install ... PKG...`).
fn runtime_packages(stage: &[Instruction]) -> BTreeSet<String> {
    let mut pkgs = BTreeSet::new();
    for i in stage.iter().filter(|i| i.cmd == "RUN") {
        for part in i.value.join(" ").split("&&") {
            if let Some(rest) = part.trim().strip_prefix("apt-get install") {
                pkgs.extend(
                    rest.split_whitespace()
                        .filter(|w| !w.starts_with('-'))
                        .map(str::to_owned),
                );
            }
        }
    }
    pkgs
}

fn port_of(listen: &str) -> &str {
    listen.rsplit(':').next().expect("a port")
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let (ok, out, err) = run(Command::new(venv("hadolint"))
        .args(["--no-color", "--failure-threshold", "info"])
        .arg(repo().join("Dockerfile")));
    assert!(ok, "hadolint:\n{out}{err}");
}

#[test]
fn the_dockerfile_builds_in_two_stages_and_runs_the_server_unprivileged_on_a_volume() {
    let stages = dockerfile_stages();
    assert_eq!(stages.len(), 2, "a builder and a runtime stage");
    let (builder, runtime) = (&stages[0], &stages[1]);
    let build = builder
        .iter()
        .filter(|i| i.cmd == "RUN")
        .map(|i| i.value.join(" "))
        .find(|v| v.contains("cargo build"))
        .expect("the builder runs cargo build");
    assert!(
        build.contains("--release")
            && build.contains("--locked")
            && build.contains("--bin csc-server"),
        "{build}"
    );
    assert!(
        runtime
            .iter()
            .any(|i| i.cmd == "COPY" && i.flags == ["--from=builder"]),
        "the runtime stage takes only the binary from the builder"
    );
    assert_eq!(
        runtime_packages(runtime),
        ["ca-certificates", "libpq5", "libssl3", "softhsm2"]
            .map(String::from)
            .into(),
        "the server, SoftHSM2 and the libraries it links: nothing else"
    );
    // not root: a numeric user (runtimes check runAsNonRoot with it)
    let user = &one(runtime, "USER").value[0];
    let uid = user.split(':').next().expect("uid");
    assert!(uid.parse::<u32>().is_ok_and(|u| u != 0), "USER {user}");
    let env = image_env(runtime);
    let data_dir = &env["CSC_DATA_DIR"];
    assert_eq!(one(runtime, "VOLUME").value, [data_dir.as_str()]);
    assert_eq!(
        one(runtime, "EXPOSE").value,
        [port_of(&env["CSC_LISTEN"]).to_owned()]
    );
    let entry = one(runtime, "ENTRYPOINT");
    assert!(entry.json && entry.value == ["csc-server"], "{entry:?}");
    let cmd = one(runtime, "CMD");
    assert!(cmd.json && cmd.value == ["serve"], "{cmd:?}");
    let health = one(runtime, "HEALTHCHECK");
    assert_eq!(health.value, ["CMD", "csc-server", "health"]);
}

#[test]
fn the_runtime_stage_installs_every_library_the_binary_links() {
    // On this Debian machine (the runtime stage's release): each library the binary needs must
    // come from a package the runtime stage installs or one of their dependencies.
    let stages = dockerfile_stages();
    let installed = runtime_packages(&stages[1]);
    let (ok, out, err) = run(Command::new("readelf").args(["-d", BIN]));
    assert!(ok, "readelf: {err}");
    let needed: Vec<String> = out
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next().map(str::to_owned))
        .collect();
    for lib in ["libssl.so.3", "libpq.so.5", "libc.so.6"] {
        assert!(needed.iter().any(|n| n == lib), "{lib} in {needed:?}");
    }
    // what `apt-get install` of the runtime packages brings: their dependency closure, read
    // from this machine's dpkg database (libc6 and libgcc-s1 come in through them)
    let mut closure = BTreeSet::new();
    let mut todo: Vec<String> = installed.iter().cloned().collect();
    while let Some(p) = todo.pop() {
        if !closure.insert(p.clone()) {
            continue;
        }
        let (_, deps, _) =
            run(Command::new("dpkg-query").args(["-W", "-f=${Depends}, ${Pre-Depends}", &p]));
        for dep in deps.split([',', '|']) {
            if let Some(name) = dep.split_whitespace().next() {
                let name = name.split(':').next().unwrap_or(name);
                if !name.is_empty() && !closure.contains(name) {
                    todo.push(name.to_owned());
                }
            }
        }
    }
    for lib in &needed {
        let (ok, out, err) = run(Command::new("dpkg-query").args(["-S", &format!("*/{lib}")]));
        assert!(ok, "no package has {lib}: {err}");
        let owners: BTreeSet<String> = out
            .lines()
            .filter_map(|l| l.split(':').next())
            .map(|p| p.trim().to_owned())
            .collect();
        assert!(
            owners.iter().any(|p| closure.contains(p)),
            "{lib} comes from {owners:?}, which installing {installed:?} does not bring"
        );
    }
}

/// `deploy/csc-server.service` with the installed binary's path replaced by the one just built
/// (`systemd-analyze verify` checks that ExecStart is executable).
fn unit_for_verify(dir: &Path) -> PathBuf {
    let unit = read("deploy/csc-server.service");
    assert!(
        unit.lines()
            .any(|l| l.starts_with("ExecStart=/usr/local/bin/csc-server ")),
        "ExecStart runs /usr/local/bin/csc-server"
    );
    let path = dir.join("csc-server.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/csc-server", BIN)).expect("write unit");
    path
}

fn unit_settings() -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in read("deploy/csc-server.service").lines() {
        if let Some((k, v)) = line.split_once('=')
            && !line.starts_with('#')
        {
            map.entry(k.to_owned()).or_default().push(v.to_owned());
        }
    }
    map
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = unit_for_verify(dir.path());
    let (ok, out, err) = run(Command::new("systemd-analyze").arg("verify").arg(&unit));
    assert!(
        ok && err.trim().is_empty(),
        "systemd-analyze verify:\n{out}{err}"
    );
    // systemd's own exposure score: below 2.0 ("OK"; 0 is a fully sandboxed unit, 10 none)
    let (ok, out, err) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&unit));
    assert!(ok, "systemd-analyze security:\n{out}{err}");
    let s = unit_settings();
    let get = |k: &str| s.get(k).cloned().unwrap_or_default();
    assert_eq!(get("User"), ["csc"]);
    assert_eq!(get("ProtectSystem"), ["strict"]);
    assert_eq!(get("NoNewPrivileges"), ["yes"]);
    assert_eq!(get("PrivateTmp"), ["yes"]);
    assert_eq!(get("ProtectHome"), ["yes"]);
    assert_eq!(get("CapabilityBoundingSet"), [""], "no capability");
    assert_eq!(get("SystemCallFilter")[0], "@system-service");
    assert_eq!(get("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    // the data directory is the only writable place, and it is the server's data directory
    assert_eq!(get("Environment"), ["CSC_DATA_DIR=/var/lib/csc-server"]);
    assert_eq!(get("ReadWritePaths"), ["/var/lib/csc-server"]);
    assert_eq!(get("StateDirectory"), ["csc-server"]);
}

/// `deploy/compose.yaml` read with the Compose specification's types (unknown keys, bad
/// durations, ports, undefined volumes... are errors), as JSON for the checks.
fn compose() -> Value {
    let compose = compose_spec::Compose::options()
        .apply_merge(true)
        .from_yaml_str(&read("deploy/compose.yaml"))
        .expect("deploy/compose.yaml follows the Compose specification");
    compose
        .validate_all()
        .expect("every volume, network, config and secret a service uses is defined");
    serde_json::to_value(&compose).expect("as JSON")
}

fn service_env(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_compose_file_runs_two_instances_on_one_database_and_token_behind_the_proxy() {
    let c = compose();
    let services = c["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["postgres", "csc-init", "csc-1", "csc-2", "proxy"])
    );
    let image_env = image_env(&dockerfile_stages()[1]);
    let data_mount = format!("csc-data:{}", image_env["CSC_DATA_DIR"]);
    let image = services["csc-init"]["image"].as_str().expect("image");
    assert!(
        services["csc-init"]["build"].is_object(),
        "csc-init builds the image"
    );
    let mut prefixes = BTreeSet::new();
    let mut seal_files = BTreeSet::new();
    for name in ["csc-init", "csc-1", "csc-2"] {
        let s = &services[name];
        assert_eq!(s["image"], image, "{name}: one image");
        let volumes = serde_json::to_string(&s["volumes"]).expect("json");
        assert!(
            volumes.contains(&data_mount.replace(':', "\",\"target\":\""))
                || volumes.contains(&data_mount),
            "{name} mounts the shared data volume ({data_mount}): {volumes}"
        );
        let env = service_env(s);
        let db = &env["CSC_DATABASE_URL"];
        assert!(
            db.starts_with("postgresql://") && db.contains("@postgres:5432/csc"),
            "{name}: the one PostgreSQL database, {db}"
        );
        if name != "csc-init" {
            assert_eq!(s["command"], serde_json::json!(["serve"]));
            prefixes.insert(env["CSC_TSA_SERIAL_PREFIX"].clone());
            seal_files.insert(env["CSC_AUDIT_SEAL_FILE"].clone());
            assert_eq!(
                port_of(&env["CSC_LISTEN"]),
                port_of(&image_env["CSC_LISTEN"])
            );
        }
    }
    assert_eq!(prefixes.len(), 2, "each instance its own TSA serial prefix");
    assert_eq!(seal_files.len(), 2, "each instance its own audit seal file");
    // the proxy balances over exactly the two instances, on the port they listen on
    let caddy = read("deploy/Caddyfile");
    let port = port_of(&image_env["CSC_LISTEN"]);
    let upstreams = caddy
        .lines()
        .find_map(|l| l.trim().strip_prefix("reverse_proxy "))
        .expect("a reverse_proxy");
    assert_eq!(
        upstreams
            .trim_end_matches('{')
            .split_whitespace()
            .collect::<Vec<_>>(),
        [format!("csc-1:{port}"), format!("csc-2:{port}")]
    );
    assert!(caddy.contains("health_uri /health"));
    let proxy = serde_json::to_string(&services["proxy"]).expect("json");
    assert!(proxy.contains("/etc/caddy/Caddyfile"), "{proxy}");
    // only the proxy is published
    for name in ["postgres", "csc-init", "csc-1", "csc-2"] {
        assert!(
            services[name].get("ports").is_none(),
            "{name} publishes no port"
        );
    }
}

/// Every `csc-server` command line in the deploy files.
fn command_lines() -> Vec<Vec<String>> {
    let mut lines = Vec::new();
    let stages = dockerfile_stages();
    let runtime = &stages[1];
    let entry = one(runtime, "ENTRYPOINT").value.clone();
    lines.push([entry.clone(), one(runtime, "CMD").value.clone()].concat());
    lines.push(one(runtime, "HEALTHCHECK").value[1..].to_vec());
    for line in read("deploy/csc-server.service").lines() {
        if let Some(exec) = line.strip_prefix("ExecStart=") {
            let mut argv: Vec<String> = exec.split_whitespace().map(str::to_owned).collect();
            argv[0] = "csc-server".into();
            lines.push(argv);
        }
    }
    let c = compose();
    for (name, s) in c["services"].as_object().expect("services") {
        if name.starts_with("csc-") {
            let command: Vec<String> =
                serde_json::from_value(s["command"].clone()).expect("a command list");
            lines.push([entry.clone(), command].concat());
        }
    }
    lines
}

#[test]
fn every_setting_variable_and_argument_in_the_deploy_files_is_the_servers() {
    // environment variables: configuration (config::ENV_KEYS), the data directory (clap), and
    // the command inputs
    let known: BTreeSet<String> = csc_api::config::ENV_KEYS
        .iter()
        .map(|k| format!("CSC_{}", k.to_uppercase()))
        .chain(["CSC_DATA_DIR", "CSC_PIN", "CSC_PASSWORD"].map(String::from))
        .collect();
    // the proxy's own variable (deploy/Caddyfile), not the server's
    let proxy_only = ["CSC_SITE_ADDRESS"];
    let mut seen = BTreeSet::new();
    for file in [
        "Dockerfile",
        "deploy/csc-server.service",
        "deploy/compose.yaml",
        "deploy/config.toml",
    ] {
        let text = read(file);
        let mut rest = text.as_str();
        while let Some(at) = rest.find("CSC_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            // `CSC_*` in a comment names them all
            if name != "CSC_" && !proxy_only.contains(&name) {
                assert!(
                    known.contains(name),
                    "{file} uses {name}, which the server does not read"
                );
                seen.insert(name.to_owned());
            }
            rest = &tail[end..];
        }
    }
    assert!(
        seen.contains("CSC_DATABASE_URL") && seen.contains("CSC_LISTEN"),
        "{seen:?}"
    );
    // the example configuration file: the server's own loader (unknown keys are errors)
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = csc_api::config::Config::load(dir.path(), Some(&repo().join("deploy/config.toml")))
        .unwrap_or_else(|e| panic!("deploy/config.toml: {e:#}"));
    assert_eq!(cfg.token_label, "csc-server");
    // command lines: the binary's own parser accepts each (clap stops at --help once every
    // argument before it parsed)
    let lines = command_lines();
    assert!(lines.len() >= 5, "{lines:?}");
    for argv in lines {
        assert_eq!(argv[0], "csc-server", "{argv:?}");
        let (ok, out, err) = run(Command::new(BIN).args(&argv[1..]).arg("--help"));
        assert!(
            ok && out.contains("Usage:"),
            "{argv:?} is not a csc-server command line:\n{err}"
        );
    }
}

#[test]
fn health_answers_for_a_live_server_and_fails_for_a_dead_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    common::run_ok(common::csc(dir.path()).arg("init"));
    let mut server = common::start({
        let mut c = common::csc(dir.path());
        c.arg("serve");
        c
    });
    let url = format!("{}/health", server.base);
    let (ok, out, err) = run(common::csc(dir.path()).args(["health", "--url", &url]));
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v, serde_json::json!({ "url": url, "status": 200 }));
    // without --url: the configured listen address, as in the image (CSC_LISTEN=0.0.0.0:PORT)
    let port = server.base.rsplit(':').next().expect("port").to_owned();
    let (ok, out, err) = run(common::csc(dir.path())
        .arg("health")
        .env("CSC_LISTEN", format!("0.0.0.0:{port}")));
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["url"], format!("http://127.0.0.1:{port}/health"));
    // a path that is not 200
    let (ok, _, err) = run(common::csc(dir.path()).args([
        "health",
        "--url",
        &format!("{}/nothing-here", server.base),
    ]));
    assert!(!ok && err.contains("answered 404"), "{err}");
    // the server gone
    server.child.kill().expect("kill");
    server.child.wait().expect("wait");
    let (ok, out, err) = run(common::csc(dir.path()).args(["health", "--url", &url]));
    assert!(!ok && out.is_empty(), "{out}");
    assert!(
        err.starts_with("error: ") && err.contains("is not reachable"),
        "{err}"
    );
}
