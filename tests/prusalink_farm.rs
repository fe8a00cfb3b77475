//! The daemon drives PrusaLink printers that log in by digest (`username` + `password` in the
//! config): the right password shows the printer idle, a wrong one offline with the reason.

mod common;

use std::time::{Duration, Instant};

use common::*;
use drivers::prusalink::sim::{PrusaLinkSim, PrusaLinkSimOptions};
use serde_json::Value;

fn printer(id: &str, url: &str, password: &str) -> String {
    format!(
        "[[printers]]\nid = \"{id}\"\ndriver = \"prusalink\"\nurl = \"{url}\"\nusername = \"maker\"\npassword = \"{password}\"\nbuild_volume_mm = [250, 210, 220]\n"
    )
}

/// Polls `GET /api/v1/printers` until `id` satisfies `check`.
async fn printer_until(farm: &TestFarm, id: &str, what: &str, check: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, list) = farm.get("/api/v1/printers").await;
        assert_eq!(status, 200, "{list}");
        let entry = list
            .as_array()
            .and_then(|l| l.iter().find(|p| p["id"] == id))
            .cloned()
            .unwrap_or_default();
        if check(&entry) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never became {what}: {entry}\n{}",
            farm.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_login_from_the_config() {
    let sim = PrusaLinkSim::spawn(PrusaLinkSimOptions {
        digest: Some(("maker".into(), "from the screen".into())),
        ..PrusaLinkSimOptions::default()
    })
    .await
    .expect("simulator");
    let extra = format!(
        "{}\n{}",
        printer("mk4-good", sim.url(), "from the screen"),
        printer("mk4-bad", sim.url(), "a guess")
    );
    let farm = TestFarm::start_custom(&[], &extra).await;
    printer_until(&farm, "mk4-good", "idle", |p| p["state"] == "idle").await;
    printer_until(&farm, "mk4-bad", "offline naming the login", |p| {
        p["state"] == "offline"
            && p["error"]
                .as_str()
                .is_some_and(|e| e.contains("401") && e.contains("digest login"))
    })
    .await;
}
