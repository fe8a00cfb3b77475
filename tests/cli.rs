//! The command line as lab staff use it: check-config, serve with a bad config,
//! submit, jobs and printers against a running farm.

mod common;

use std::process::Command;

use common::*;

fn farmhand(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_farmhand"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run farmhand")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_accepts_the_example_and_lists_every_problem_of_a_bad_one() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/farmhand.example.toml"
    );
    let out = farmhand(&["check-config", example]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for expected in [
        "is valid",
        "mk3-1",
        "x1c-1",
        "kiosk-1 (staff)",
        "kept as .eml files",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }

    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[storage]\ndata_dir = \"/tmp/x\"\n[[printers]]\nid = \"p\"\ndriver = \"marlin\"\n[[workstations]]\nid = \"k\"\ntoken = \"short\"\n",
    )
    .expect("write");
    for command in [
        vec!["check-config", bad.to_str().expect("path")],
        vec!["serve", "--config", bad.to_str().expect("path")],
    ] {
        let out = farmhand(&command);
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        let stderr = text(&out.stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("farmhand: config"))
            .collect();
        assert_eq!(lines.len(), 2, "one line per problem:\n{stderr}");
        assert!(
            stderr.contains("needs `port`") && stderr.contains("too short"),
            "{stderr}"
        );
    }
    let out = farmhand(&["serve", "--config", "/nonexistent/farmhand.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/farmhand.toml"));
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_then_list_from_the_terminal() {
    let farm = TestFarm::start().await;
    let model = corpus("models/extruder_idler.obj");
    let url = farm.url.clone();
    let model_path = model.to_str().expect("path").to_string();
    let out = tokio::task::spawn_blocking(move || {
        farmhand(&[
            "submit",
            &model_path,
            "--name",
            "Grace Student",
            "--email",
            "grace.s@example.edu",
            "--server",
            &url,
            "--material",
            "petg",
            "--color",
            "orange",
        ])
    })
    .await
    .expect("join");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Submitted: job 1 (GraceStudent_PETG_Orange_1), status UPLOADED"),
        "{stdout}"
    );
    let job = farm.job("1").await;
    assert_eq!(job["format"], "obj");
    assert_eq!(
        job["size_bytes"],
        std::fs::metadata(&model).expect("size").len()
    );

    let url = farm.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        farmhand(&[
            "jobs",
            "--server",
            &url,
            "--token",
            STAFF_TOKEN,
            "--status",
            "uploaded",
        ])
    })
    .await
    .expect("join");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains("GraceStudent_PETG_Orange_1") && listing.contains("1 job(s)"),
        "{listing}"
    );

    let url = farm.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        farmhand(&["printers", "--server", &url, "--token", STAFF_TOKEN])
    })
    .await
    .expect("join");
    let listing = text(&out.stdout);
    assert!(
        listing.contains("manual-1") && listing.contains("idle"),
        "{listing}"
    );

    // A wrong token is a clear one-line error and a non-zero exit.
    let url = farm.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        farmhand(&["jobs", "--server", &url, "--token", "wrong-token"])
    })
    .await
    .expect("join");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--token"),
        "{}",
        text(&out.stderr)
    );
}

fn gcode_file() -> String {
    corpus("gcode/3DBenchy-gunwale.stl_cura413-ender3-0.20.gcode")
        .to_str()
        .expect("path")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn print_on_a_marlin_printer_exits_zero_only_when_the_print_completed() {
    use drivers::marlin::sim::{MarlinSim, SimOptions};
    let sim = MarlinSim::spawn(SimOptions::default()).expect("simulator");
    let port = sim.port_path().to_str().expect("port").to_string();
    let file = gcode_file();
    let out = tokio::task::spawn_blocking(move || {
        farmhand(&["print", "--driver", "marlin", "--port", &port, &file])
    })
    .await
    .expect("join");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(sim.stats().accepted > 1000);

    // A firmware halt mid-print: non-zero, with the firmware's own words.
    let slow = MarlinSim::spawn(SimOptions {
        time_scale: 0.02,
        ..Default::default()
    })
    .expect("simulator");
    let child = Command::new(env!("CARGO_BIN_EXE_farmhand"))
        .args([
            "print",
            "--driver",
            "marlin",
            "--port",
            slow.port_path().to_str().expect("port"),
            &gcode_file(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run farmhand print");
    wait_for(
        "the print to start",
        std::time::Duration::from_secs(20),
        || (slow.stats().accepted > 50).then_some(()),
    )
    .await;
    slow.halt("Thermal Runaway, system stopped! Heater_ID: 0");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Thermal Runaway"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn print_on_a_moonraker_printer_and_clear_usage_errors() {
    use drivers::moonraker::sim::{MoonrakerSim, MoonrakerSimOptions};
    let sim = MoonrakerSim::spawn(MoonrakerSimOptions {
        time_scale: 0.001,
        api_key: Some("k3y".into()),
        ..Default::default()
    })
    .await
    .expect("simulator");
    let url = sim.url().to_string();
    let file = gcode_file();
    let out = tokio::task::spawn_blocking(move || {
        farmhand(&[
            "print",
            "--driver",
            "moonraker",
            "--url",
            &url,
            "--api-key",
            "k3y",
            &file,
        ])
    })
    .await
    .expect("join");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = farmhand(&["print", "--driver", "mqtt", "--topic", "x", &gcode_file()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--broker"),
        "{}",
        text(&out.stderr)
    );
    let out = farmhand(&["print", "--driver", "teleporter", &gcode_file()]);
    assert!(
        text(&out.stderr).contains("unknown driver"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn print_on_a_prusalink_printer_with_digest_login() {
    use drivers::prusalink::sim::{PrusaLinkSim, PrusaLinkSimOptions};
    let sim = PrusaLinkSim::spawn(PrusaLinkSimOptions {
        time_scale: 0.001,
        digest: Some(("maker".into(), "pr1nt pw".into())),
        ..Default::default()
    })
    .await
    .expect("simulator");
    let print = |password: &'static str| {
        let url = sim.url().to_string();
        let file = gcode_file();
        tokio::task::spawn_blocking(move || {
            farmhand(&[
                "print",
                "--driver",
                "prusalink",
                "--url",
                &url,
                "--username",
                "maker",
                "--password",
                password,
                &file,
            ])
        })
    };
    let out = print("pr1nt pw").await.expect("join");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sim.state(), "FINISHED");

    let out = print("wrong").await.expect("join");
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("digest login") && stderr.contains("password"),
        "{stderr}"
    );

    // In the config, the login is both keys or neither.
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("farmhand.toml");
    std::fs::write(
        &config,
        "[storage]\ndata_dir = \"/tmp/x\"\n[[printers]]\nid = \"mk4\"\ndriver = \"prusalink\"\nurl = \"http://192.168.1.60\"\nusername = \"maker\"\n",
    )
    .expect("write");
    let out = farmhand(&["check-config", config.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("`username` and `password` together"),
        "{}",
        text(&out.stderr)
    );
}
