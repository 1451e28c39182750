//! Sessions across three `weft` processes (real Cassandra, Redis, gossip and
//! QUIC): revoking a session on one node closes its sockets on all three
//! (4001) and its tokens are refused by every node; a refresh token reused on
//! a third node after its pair was used on a second revokes the session
//! everywhere too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::server::{TestServer, code};
use common::trio::{as_server, three_nodes};
use common::ws::{Client, wait_within};
use serde_json::{Value, json};

async fn me(s: &TestServer, jwt: &Value) -> (u16, Value) {
    s.send(s.http.get(s.url("/api/v1/me")).bearer_auth(jwt.as_str().unwrap())).await
}

async fn refused_everywhere(nodes: &[TestServer], jwt: &Value) {
    for node in nodes {
        wait_within(Duration::from_secs(10), "every node refuses the token", || async {
            let (status, body) = me(node, jwt).await;
            status == 401 && code(&body) == "session_revoked"
        })
        .await;
    }
}

async fn sockets_on_every_node(nodes: &[TestServer], jwt: &Value) -> Vec<Client> {
    let mut sockets = Vec::new();
    for node in nodes {
        sockets.push(Client::connect(node, jwt.as_str().unwrap()).await);
    }
    sockets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_reuse_reach_every_process() {
    let trio = three_nodes().await;
    let nodes: Vec<TestServer> = trio.nodes.iter().map(as_server).collect();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let token = a.new_app().await;
    let sessions = format!("/api/v1/applications/{token}/users/erin/sessions");

    // Revoked through node b: the sockets on a, b and c close, every node refuses the token.
    let (status, laptop) = a.post(&sessions, json!({"device": "laptop"})).await;
    assert_eq!(status, 201, "{laptop}");
    let mut sockets = sockets_on_every_node(&nodes, &laptop["access_token"]).await;
    let one = format!("{sessions}/{}", laptop["session_id"].as_str().unwrap());
    assert_eq!(b.send(b.http.delete(b.url(&one))).await.0, 204);
    for socket in &mut sockets {
        assert_eq!(socket.close_code().await.0, 4001);
    }
    refused_everywhere(&nodes, &laptop["access_token"]).await;

    // Rotated on a, the new pair used on c, the old refresh token presented to b: theft.
    let (status, first) = a.post(&sessions, json!({"device": "phone"})).await;
    assert_eq!(status, 201, "{first}");
    let mut sockets = sockets_on_every_node(&nodes, &first["access_token"]).await;
    let (status, second) =
        a.post("/api/v1/auth/refresh", json!({"refresh_token": first["refresh_token"]})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(me(c, &second["access_token"]).await.0, 200);
    let (status, body) =
        b.post("/api/v1/auth/refresh", json!({"refresh_token": first["refresh_token"]})).await;
    assert_eq!((status, code(&body)), (401, "session_revoked"), "{body}");
    for socket in &mut sockets {
        assert_eq!(socket.close_code().await.0, 4001);
    }
    refused_everywhere(&nodes, &second["access_token"]).await;
    let (status, body) =
        c.post("/api/v1/auth/refresh", json!({"refresh_token": second["refresh_token"]})).await;
    assert_eq!((status, code(&body)), (401, "invalid_refresh_token"), "{body}");
    assert_eq!(a.get(&sessions).await.1["sessions"], json!([]));
}
