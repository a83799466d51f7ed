use std::collections::{BTreeMap, HashSet};

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

on_both_stores!(
    paging_returns_every_change_exactly_once_including_tombstones,
    changes_made_while_paging_are_not_missed,
    bad_cursors_and_limits_are_rejected,
    a_collection_filter_catches_up_from_an_old_cursor,
);

/// The server's current state of every doc ever written, as pull reports it.
async fn server_state(
    s: &Server,
    ids: &[(String, String)],
) -> BTreeMap<(String, String), (u64, bool, Value)> {
    let mut out = BTreeMap::new();
    for (c, k) in ids {
        let (status, etag, body) = s.get_json(&format!("/docs/{c}/{k}")).await;
        let state = match status.as_u16() {
            200 => {
                let v: u64 = etag.unwrap().trim_matches('"').parse().unwrap();
                (v, false, body)
            }
            410 => (
                body["current"]["version"].as_u64().unwrap(),
                true,
                Value::Null,
            ),
            other => panic!("unexpected {other}"),
        };
        out.insert((c.clone(), k.clone()), state);
    }
    out
}

fn apply(changes: &[Value], into: &mut BTreeMap<(String, String), (u64, bool, Value)>) {
    for ch in changes {
        let id = (
            ch["collection"].as_str().unwrap().to_owned(),
            ch["key"].as_str().unwrap().to_owned(),
        );
        let version = ch["version"].as_u64().unwrap();
        assert_eq!(ch["etag"], format!("\"{version}\""));
        let deleted = ch["deleted"].as_bool().unwrap();
        if deleted {
            assert_eq!(ch["doc"], Value::Null);
        }
        if let Some((old, _, _)) = into.get(&id) {
            assert!(version > *old, "versions only move forward");
        }
        into.insert(id, (version, deleted, ch["doc"].clone()));
    }
}

async fn paging_returns_every_change_exactly_once_including_tombstones(store: Backend) {
    let s = Server::start(store);
    let mut ids = Vec::new();
    for i in 0..10 {
        let coll = if i % 2 == 0 { "todos" } else { "notes" };
        let key = format!("d{i}");
        let res = s
            .put(
                &format!("/docs/{coll}/{key}"),
                &format!("c{i}"),
                &json!({"i": i}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        ids.push((coll.to_owned(), key));
    }
    for i in [1, 4, 7] {
        let (c, k) = &ids[i];
        s.patch(
            &format!("/docs/{c}/{k}"),
            &format!("u{i}"),
            &json!({"updated": true}),
        )
        .send()
        .await
        .unwrap();
    }
    for i in [2, 7] {
        let (c, k) = &ids[i];
        assert_eq!(
            s.delete(&format!("/docs/{c}/{k}"), &format!("x{i}"))
                .send()
                .await
                .unwrap()
                .status(),
            204
        );
    }

    let (changes, cursor) = s.pull_all("", 3).await;
    let seen: Vec<(String, String)> = changes
        .iter()
        .map(|c| {
            (
                c["collection"].as_str().unwrap().to_owned(),
                c["key"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 10, "each doc once: {seen:?}");
    assert_eq!(unique.len(), 10);
    let tombstones: Vec<_> = changes.iter().filter(|c| c["deleted"] == true).collect();
    assert_eq!(tombstones.len(), 2);

    let mut replica = BTreeMap::new();
    apply(&changes, &mut replica);
    assert_eq!(replica, server_state(&s, &ids).await);

    // Nothing new: an empty page and the same cursor.
    let (_, _, page) = s.get_json(&format!("/pull?since={cursor}")).await;
    assert_eq!(
        page,
        json!({"changes": [], "cursor": cursor, "hasMore": false})
    );

    // New changes after the cursor, and only those.
    s.put("/docs/todos/d0", "later", &json!({"i": 100}))
        .send()
        .await
        .unwrap();
    s.put("/docs/todos/new", "later2", &json!({}))
        .send()
        .await
        .unwrap();
    let (more, cursor2) = s.pull_all(&cursor, 1).await;
    assert_eq!(more.len(), 2);
    assert_eq!(more[0]["key"], "d0");
    assert_eq!(more[0]["version"], 2);
    assert_eq!(more[1]["key"], "new");
    assert!(cursor2.parse::<u64>().unwrap() > cursor.parse::<u64>().unwrap());
}

async fn changes_made_while_paging_are_not_missed(store: Backend) {
    let s = Server::start(store);
    let mut ids = Vec::new();
    for i in 0..6 {
        s.put(&format!("/docs/c/k{i}"), &format!("a{i}"), &json!({"v": 0}))
            .send()
            .await
            .unwrap();
        ids.push(("c".to_owned(), format!("k{i}")));
    }
    let mut replica = BTreeMap::new();
    let (_, _, page) = s.get_json("/pull?limit=2").await;
    assert_eq!(page["hasMore"], true);
    apply(page["changes"].as_array().unwrap(), &mut replica);
    let mut cursor = page["cursor"].as_str().unwrap().to_owned();

    // k0 was already delivered; it changes again, k3 (not yet delivered) is deleted, k9 is new.
    s.put("/docs/c/k0", "b0", &json!({"v": 1}))
        .send()
        .await
        .unwrap();
    s.delete("/docs/c/k3", "b3").send().await.unwrap();
    s.put("/docs/c/k9", "b9", &json!({"v": 9}))
        .send()
        .await
        .unwrap();
    ids.push(("c".to_owned(), "k9".to_owned()));

    let mut deliveries = page["changes"].as_array().unwrap().len();
    loop {
        let (_, _, page) = s.get_json(&format!("/pull?since={cursor}&limit=2")).await;
        let changes = page["changes"].as_array().unwrap();
        deliveries += changes.len();
        apply(changes, &mut replica);
        cursor = page["cursor"].as_str().unwrap().to_owned();
        if page["hasMore"] == false {
            break;
        }
    }
    assert_eq!(replica, server_state(&s, &ids).await);
    assert!(
        replica[&("c".to_owned(), "k3".to_owned())].1,
        "k3 is a tombstone"
    );
    // 6 initial docs (k3 delivered only as its tombstone) + k0's new version + k9.
    assert_eq!(deliveries, 8);
}

async fn bad_cursors_and_limits_are_rejected(store: Backend) {
    let s = Server::start(store);
    for q in ["since=abc", "since=-1", "since=1.5"] {
        let res = s
            .req(Method::GET, &format!("/pull?{q}"))
            .send()
            .await
            .unwrap();
        expect_problem(res, 400, "invalid-cursor").await;
    }
    for q in ["limit=0", "limit=1001", "limit=x"] {
        let res = s
            .req(Method::GET, &format!("/pull?{q}"))
            .send()
            .await
            .unwrap();
        expect_problem(res, 400, "invalid-request").await;
    }
    let (_, _, page) = s.get_json("/pull").await;
    assert_eq!(
        page,
        json!({"changes": [], "cursor": "0", "hasMore": false})
    );
}

/// Pages of `/pull?{query}` from `since` until `hasMore` is false.
async fn pull_filtered(s: &Server, since: &str, query: &str) -> (Vec<Value>, String) {
    let mut cursor = since.to_owned();
    let mut all = Vec::new();
    loop {
        let (status, _, page) = s
            .get_json(&format!("/pull?since={cursor}&limit=2&{query}"))
            .await;
        assert_eq!(status, 200, "{page}");
        all.extend(page["changes"].as_array().unwrap().clone());
        cursor = page["cursor"].as_str().unwrap().to_owned();
        if !page["hasMore"].as_bool().unwrap() {
            return (all, cursor);
        }
    }
}

async fn a_collection_filter_catches_up_from_an_old_cursor(store: Backend) {
    let s = Server::start(store);
    let write = |coll: &'static str, key: String, n: usize| {
        let req = s.put(
            &format!("/docs/{coll}/{key}"),
            &format!("{coll}{n}"),
            &json!({"n": n}),
        );
        async move { assert!(req.send().await.unwrap().status().is_success()) }
    };
    write("todos", "t0".into(), 0).await;
    let (_, paused_at) = s.pull_all("", 100).await;
    // While a client holds `notes` back, every collection changes and its shared cursor moves on.
    for n in 1..=6 {
        let coll = ["todos", "notes", "tags"][n % 3];
        write(coll, format!("{coll}{}", n % 2), n).await;
    }
    write("notes", "notes1".into(), 7).await;
    let (_, head) = s.pull_all(&paused_at, 100).await;

    // The catch-up from the old cursor brings every `notes` doc changed since, once, latest state.
    let (notes, end) = pull_filtered(&s, &paused_at, "collection=notes").await;
    let got: Vec<(&str, &str, u64)> = notes
        .iter()
        .map(|c| {
            (
                c["collection"].as_str().unwrap(),
                c["key"].as_str().unwrap(),
                c["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [("notes", "notes0", 1), ("notes", "notes1", 2)]);
    assert!(end.parse::<u64>().unwrap() <= head.parse::<u64>().unwrap());
    let (again, _) = pull_filtered(&s, &end, "collection=notes").await;
    assert!(again.is_empty(), "nothing after the catch-up's cursor");

    // Several filters: the union, still in commit order; an unknown collection matches nothing.
    let (two, _) = pull_filtered(&s, &paused_at, "collection=notes&collection=tags").await;
    let colls: HashSet<&str> = two
        .iter()
        .map(|c| c["collection"].as_str().unwrap())
        .collect();
    assert_eq!(colls, HashSet::from(["notes", "tags"]));
    assert_eq!(two.len(), 4);
    let (none, cursor) = pull_filtered(&s, &paused_at, "collection=nope").await;
    assert!(none.is_empty());
    assert_eq!(cursor, paused_at, "no entries: since unchanged");

    let empty = s
        .req(Method::GET, "/pull?collection=")
        .send()
        .await
        .unwrap();
    expect_problem(empty, 400, "invalid-request").await;
    let many: Vec<String> = (0..101).map(|i| format!("collection=c{i}")).collect();
    let res = s
        .req(Method::GET, &format!("/pull?{}", many.join("&")))
        .send()
        .await
        .unwrap();
    expect_problem(res, 400, "invalid-request").await;
}
