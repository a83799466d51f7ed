//! Several server instances on one PostgreSQL database: the idempotency rules, preconditions and
//! pull cursors must hold across processes exactly as they do in one. (SQLite has one process per
//! file, so these run on PostgreSQL only.)

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::*;

/// Two instances on one fresh PostgreSQL database, with the same extra arguments.
fn two_instances(args: &[&str]) -> (Server, Server) {
    let a = Server::start_with(Backend::Postgres, args);
    let b = a.another_instance(args);
    (a, b)
}

#[tokio::test]
async fn fifty_duplicates_split_across_two_instances_apply_once() {
    // The latency is spent while the first request holds the key, so the duplicates overlap it.
    let (a, b) = two_instances(&["--faults", r#"{"latencyMs": 300}"#]);
    let body = json!({"title": "once"});
    let sends = (0..50).map(|i| {
        let s = if i % 2 == 0 { &a } else { &b };
        let req = s.put("/docs/c/dup", "the-key", &body);
        async move {
            let res = req.send().await.unwrap();
            let replay = replayed(&res);
            let (status, etag, body) = parts(res).await;
            (i % 2, status, etag, replay, body)
        }
    });
    let answers = join_all(sends).await;

    let fresh: Vec<_> = answers
        .iter()
        .filter(|(_, st, _, replay, _)| st.is_success() && !replay)
        .collect();
    assert_eq!(fresh.len(), 1, "exactly one request applied: {answers:?}");
    let winner = fresh[0].0;
    let mut etags = HashSet::new();
    let mut in_use_elsewhere = 0;
    for (instance, status, etag, replay, body) in &answers {
        if status.is_success() {
            assert_eq!(*status, StatusCode::CREATED);
            etags.insert(etag.clone());
            assert!(*replay || *instance == winner);
        } else {
            assert_eq!(*status, StatusCode::CONFLICT, "{body}");
            assert_eq!(body["type"], format!("{PROBLEMS}idempotency-key-in-use"));
            if *instance != winner {
                in_use_elsewhere += 1;
            }
        }
    }
    assert_eq!(etags, HashSet::from([Some("\"1\"".to_owned())]), "one ETag");
    assert!(
        in_use_elsewhere > 0,
        "the other instance saw the key in flight: {answers:?}"
    );
    assert_eq!(a.ledger().await, json!({"default/the-key": 1}));
    assert_eq!(b.ledger().await, json!({"default/the-key": 1}));
}

#[tokio::test]
async fn concurrent_if_match_writers_on_two_instances_have_one_winner() {
    let (a, b) = two_instances(&["--faults", r#"{"latencyMs": 150}"#]);
    let res = a
        .put("/docs/c/x", "create", &json!({"n": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let sends = (0..20).map(|i| {
        let s = if i % 2 == 0 { &a } else { &b };
        let req = s
            .put("/docs/c/x", &format!("w{i}"), &json!({"n": i}))
            .header("If-Match", "\"1\"");
        async move { (i, req.send().await.unwrap().status().as_u16()) }
    });
    let answers = join_all(sends).await;
    let winners: Vec<_> = answers.iter().filter(|(_, st)| *st == 200).collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    assert!(
        answers.iter().all(|(_, st)| *st == 200 || *st == 412),
        "{answers:?}"
    );
    let (status, etag, doc) = b.get_json("/docs/c/x").await;
    assert_eq!(
        (status.as_u16(), etag.as_deref()),
        (200, Some("\"2\"")),
        "no lost update"
    );
    assert_eq!(doc, json!({"n": winners[0].0}));
    let ledger = a.ledger().await;
    assert_eq!(
        ledger.as_object().unwrap().len(),
        2,
        "create + one winner: {ledger}"
    );
}

#[tokio::test]
async fn concurrent_creators_of_one_new_doc_on_two_instances_each_get_a_version() {
    // No precondition: every write applies, in some order. The first creates the document, the
    // rest lost the race to create it and must be retried as updates, each bumping the version.
    let (a, b) = two_instances(&["--faults", r#"{"latencyMs": 100}"#]);
    let sends = (0..20).map(|i| {
        let s = if i % 2 == 0 { &a } else { &b };
        let req = s.put("/docs/c/new", &format!("n{i}"), &json!({"i": i}));
        async move {
            let (status, etag, body) = parts(req.send().await.unwrap()).await;
            (status.as_u16(), etag.unwrap_or_else(|| body.to_string()))
        }
    });
    let answers = join_all(sends).await;
    let created = answers.iter().filter(|(st, _)| *st == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    assert!(
        answers.iter().all(|(st, _)| *st == 200 || *st == 201),
        "{answers:?}"
    );
    let mut versions: Vec<u64> = answers
        .iter()
        .map(|(_, etag)| etag.trim_matches('"').parse().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=20).collect::<Vec<u64>>(),
        "one version each, none lost"
    );
    let (_, etag, _) = a.get_json("/docs/c/new").await;
    assert_eq!(etag.as_deref(), Some("\"20\""));
}

/// Replays pulled changes into a replica; versions never go back.
fn apply(changes: &[Value], replica: &mut BTreeMap<String, (u64, bool)>) {
    for ch in changes {
        let id = format!(
            "{}/{}",
            ch["collection"].as_str().unwrap(),
            ch["key"].as_str().unwrap()
        );
        let version = ch["version"].as_u64().unwrap();
        let deleted = ch["deleted"].as_bool().unwrap();
        let entry = replica.entry(id).or_insert((0, false));
        if version > entry.0 {
            *entry = (version, deleted);
        }
    }
}

#[tokio::test]
async fn a_pull_reader_never_misses_a_commit_from_the_other_instance() {
    let (a, b) = two_instances(&[]);
    let stop_at = Instant::now() + Duration::from_secs(3);
    // Instance A commits long transactions (pushes of 40 ops), instance B short ones that start
    // later and commit first: the case where positions taken at insert time would be skipped.
    let pushes = {
        let (client, url) = (a.client.clone(), a.api("/push"));
        tokio::spawn(async move {
            let mut round = 0;
            while Instant::now() < stop_at {
                let ops: Vec<Value> = (0..40)
                    .map(|j| {
                        json!({"method": "PUT", "collection": "long", "key": format!("k{}", (round * 7 + j) % 200),
                               "idempotencyKey": format!("p{round}-{j}"), "body": {"round": round}})
                    })
                    .collect();
                let res = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(json!({ "ops": ops }).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                round += 1;
            }
            round
        })
    };
    let singles = {
        let (client, base) = (b.client.clone(), b.api("/docs/short"));
        tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < stop_at {
                let res = client
                    .put(format!("{base}/s{}", i % 300))
                    .header("Idempotency-Key", sf(&format!("s{i}")))
                    .header("Content-Type", "application/json")
                    .body(json!({"i": i}).to_string())
                    .send()
                    .await
                    .unwrap();
                assert!(res.status().is_success());
                i += 1;
            }
            i
        })
    };

    // The reader pages through instance A with small pages while both write.
    let mut replica = BTreeMap::new();
    let mut cursor = String::new();
    let mut pages = 0;
    while Instant::now() < stop_at {
        let (status, _, page) = a.get_json(&format!("/pull?since={cursor}&limit=7")).await;
        assert_eq!(status, 200);
        apply(page["changes"].as_array().unwrap(), &mut replica);
        cursor = page["cursor"].as_str().unwrap().to_owned();
        pages += 1;
    }
    let (rounds, puts) = (pushes.await.unwrap(), singles.await.unwrap());
    let (rest, _) = b.pull_all(&cursor, 50).await;
    apply(&rest, &mut replica);
    assert!(
        rounds > 3 && puts > 20 && pages > 10,
        "{rounds} pushes, {puts} puts, {pages} pages"
    );

    // The replica holds exactly the server's state: nothing was skipped.
    let (everything, _) = b.pull_all("", 1000).await;
    let mut truth = BTreeMap::new();
    apply(&everything, &mut truth);
    assert_eq!(
        everything.len(),
        truth.len(),
        "each doc once in a full pull"
    );
    assert_eq!(replica, truth);
}

#[tokio::test]
async fn sigkill_of_one_instance_mid_write_leaves_no_half_applied_key() {
    let (mut a, b) = two_instances(&[]);
    const OPS: usize = 20;
    let batch = |i: usize| -> Value {
        (0..OPS)
            .map(|j| {
                json!({"method": "PUT", "collection": "c", "key": format!("d{i}-{j}"),
                            "idempotencyKey": format!("b{i}-{j}"), "body": {"i": i, "j": j}})
            })
            .collect()
    };
    let writer = {
        let (client, url) = (client(Duration::from_secs(5)), a.api("/push"));
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..10_000 {
                let res = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(json!({ "ops": batch(i) }).to_string())
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 200 => acked.push(true),
                    Ok(r) => panic!("push {i}: {}", r.status()),
                    Err(_) => {
                        acked.push(false);
                        break;
                    }
                }
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    a.kill();
    let acked = writer.await.unwrap();
    assert!(
        acked.iter().filter(|x| **x).count() > 3,
        "some pushes were acked first"
    );
    assert!(!acked.last().unwrap(), "the kill interrupted a push");

    // Each push committed whole or not at all: never some of its keys.
    let ledger = b.ledger().await;
    let ledger = ledger.as_object().unwrap();
    for (i, was_acked) in acked.iter().enumerate() {
        let applied = (0..OPS)
            .filter(|j| ledger.contains_key(&format!("default/b{i}-{j}")))
            .count();
        assert!(
            applied == 0 || applied == OPS,
            "push {i}: {applied} of {OPS} keys applied"
        );
        if *was_acked {
            assert_eq!(applied, OPS, "push {i} was acked");
        }
    }

    // The survivor takes over the retries at once: the dead instance's claims died with it.
    for (i, was_acked) in acked.iter().enumerate() {
        let res = b.push(batch(i)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        for r in body["results"].as_array().unwrap() {
            assert_eq!(r["status"], 201, "push {i}: {r}");
            if *was_acked {
                assert_eq!(r["replayed"], true, "push {i}: {r}");
            }
        }
    }
    let ledger = b.ledger().await;
    let ledger = ledger.as_object().unwrap();
    assert_eq!(ledger.len(), acked.len() * OPS);
    assert!(
        ledger.values().all(|n| n == &json!(1)),
        "exactly once: {ledger:?}"
    );
    let (changes, _) = b.pull_all("", 1000).await;
    assert_eq!(changes.len(), acked.len() * OPS);
}

/// Runs the futures as tasks of their own, all at once, and returns their outputs in order.
async fn join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}
