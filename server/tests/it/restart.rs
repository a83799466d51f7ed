use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

on_both_stores!(
    a_crash_mid_run_loses_nothing_committed_and_keeps_idempotency_records,
    sigterm_shuts_down_gracefully_and_restart_keeps_state,
    logs_never_contain_authorization,
);

async fn a_crash_mid_run_loses_nothing_committed_and_keeps_idempotency_records(store: Backend) {
    let mut s = Server::start(store);
    let writer = {
        let client = client(Duration::from_secs(5));
        let base = s.api("");
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..400 {
                let res = client
                    .put(format!("{base}/docs/c/k{i}"))
                    .header("Idempotency-Key", sf(&format!("w{i}")))
                    .header("Content-Type", "application/json")
                    .body(json!({"i": i}).to_string())
                    .send()
                    .await;
                let acked = matches!(&res, Ok(r) if r.status() == 201);
                let failed = res.is_err();
                outcomes.push(acked);
                if failed {
                    // The server is gone; the rest is never sent.
                    break;
                }
            }
            outcomes
        })
    };
    // Crash (SIGKILL) while the writer is going.
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.kill();
    let outcomes = writer.await.unwrap();
    let acked: Vec<usize> = (0..outcomes.len()).filter(|&i| outcomes[i]).collect();
    assert!(
        acked.len() > 5,
        "the writer should have got some acks first ({})",
        acked.len()
    );
    assert!(outcomes.len() < 400, "the crash should interrupt the run");

    s.restart();
    for &i in &acked {
        let (status, etag, doc) = s.get_json(&format!("/docs/c/k{i}")).await;
        assert_eq!(
            (status.as_u16(), etag.as_deref()),
            (200, Some("\"1\"")),
            "k{i} was acked"
        );
        assert_eq!(doc, json!({"i": i}));
    }
    // The client retries everything it sent with the same keys: acked ones replay, the one in
    // flight at the crash either replays (it committed) or applies now.
    for (i, &was_acked) in outcomes.iter().enumerate() {
        let res = s
            .put(&format!("/docs/c/k{i}"), &format!("w{i}"), &json!({"i": i}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "k{i}");
        if was_acked {
            assert!(
                replayed(&res),
                "k{i} was acked before the crash, so it must replay"
            );
        }
    }
    let ledger = s.ledger().await;
    let ledger = ledger.as_object().unwrap();
    assert_eq!(ledger.len(), outcomes.len());
    assert!(
        ledger.values().all(|n| n == &json!(1)),
        "exactly once: {ledger:?}"
    );

    let (changes, _) = s.pull_all("", 1000).await;
    assert_eq!(changes.len(), outcomes.len());
}

async fn sigterm_shuts_down_gracefully_and_restart_keeps_state(store: Backend) {
    let mut s = Server::start(store);
    s.put("/docs/c/a", "a", &json!({"v": 1}))
        .send()
        .await
        .unwrap();
    let (_, _, page) = s.get_json("/pull").await;
    let cursor = page["cursor"].as_str().unwrap().to_owned();
    assert!(s.terminate(), "exit status 0 after SIGTERM");
    s.restart();
    let replay = s
        .put("/docs/c/a", "a", &json!({"v": 1}))
        .send()
        .await
        .unwrap();
    assert!(replayed(&replay));
    s.put("/docs/c/b", "b", &json!({"v": 1}))
        .send()
        .await
        .unwrap();
    let (_, _, page) = s.get_json(&format!("/pull?since={cursor}")).await;
    let keys: Vec<&Value> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["key"])
        .collect();
    assert_eq!(keys, [&json!("b")], "the cursor survives the restart");
}

async fn logs_never_contain_authorization(store: Backend) {
    let s = Server::start_with(store, &["--log", "trace"]);
    let secret = "Bearer s3cr3t-t0ken-abc";
    let res = s
        .put("/docs/c/a", "a", &json!({}))
        .header("Authorization", secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = s
        .req(reqwest::Method::GET, "/pull")
        .header("Authorization", secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = s.stderr_text();
    assert!(
        logs.contains("/api/docs/c/a"),
        "requests are logged: {logs}"
    );
    assert!(!logs.contains("s3cr3t"), "the token leaked into the logs");
}
