//! The throwaway PostgreSQL servers of `tests/support/postgres.rs`: the shared
//! one answers, and an owned one survives a crash (`stop_immediate`) with its
//! data, refusing connections while it is down; and the shared PgBouncer
//! pools transactions with its stock settings.

#![cfg(feature = "postgres")]

mod support;

use postgres::{Client, NoTls};
use support::postgres::{TestServer, pgbouncer, url};

fn connect(url: &str) -> Result<Client, postgres::Error> {
    let sep = if url.contains('?') { '&' } else { '?' };
    Client::connect(&format!("{url}{sep}connect_timeout=10"), NoTls)
}

#[test]
fn the_shared_server_answers() {
    let url = url();
    let mut client = connect(&url).unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    let one: i32 = client.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
    // The same server for every caller in this process.
    assert_eq!(support::postgres::url(), url);
}

#[test]
fn the_shared_server_takes_many_connections_at_once() {
    let url = url();
    let clients: Vec<Client> = (0..50)
        .map(|i| connect(&url).unwrap_or_else(|e| panic!("connection {i} to {url}: {e}")))
        .collect();
    assert_eq!(clients.len(), 50);
}

#[test]
fn a_test_server_survives_a_crash_with_its_data() {
    let server = TestServer::start();
    let url = server.url();
    assert!(url.contains(&format!(":{}/", server.port())), "{url}");

    let mut client = connect(&url).unwrap();
    client
        .batch_execute(
            "CREATE TABLE kept (id int PRIMARY KEY, name text NOT NULL);
             INSERT INTO kept VALUES (1, 'before the crash');",
        )
        .unwrap();

    server.stop_immediate();
    assert!(
        client.query_one("SELECT 1", &[]).is_err(),
        "the old connection died"
    );
    let refused = connect(&url);
    assert!(refused.is_err(), "a stopped server refuses connections");

    server.start_again();
    let mut client = connect(&url).unwrap();
    let name: String = client
        .query_one("SELECT name FROM kept WHERE id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(name, "before the crash");
    assert!(
        server.log().contains("automatic recovery"),
        "the restart recovered from a crash"
    );
}

#[test]
fn test_servers_started_at_once_get_their_own_ports() {
    let servers: Vec<TestServer> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..3).map(|_| scope.spawn(TestServer::start)).collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    for (i, server) in servers.iter().enumerate() {
        let mut client = connect(&server.url()).unwrap();
        client
            .batch_execute(&format!("CREATE TABLE mine_{i} ()"))
            .unwrap();
    }
    let mut ports: Vec<u16> = servers.iter().map(TestServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    // Each its own cluster: a table made on one is not on another.
    let mut client = connect(&servers[0].url()).unwrap();
    assert!(client.batch_execute("SELECT * FROM mine_1").is_err());
}

#[test]
fn a_dropped_test_server_is_gone() {
    let server = TestServer::start();
    let dir = server.socket_dir().to_path_buf();
    let url = server.url();
    connect(&url).unwrap();
    drop(server);
    assert!(!dir.exists(), "{} removed", dir.display());
    assert!(
        connect(&url).is_err(),
        "a dropped server refuses connections"
    );
}

/// The shared PgBouncer is stock: it refuses the startup parameter
/// `options`; and it pools transactions: a server session that one client
/// used is another client's next, while the first is still connected.
#[test]
fn the_shared_pgbouncer_pools_transactions_with_stock_settings() {
    let url = pgbouncer();
    let sep = if url.contains('?') { '&' } else { '?' };
    let refused = connect(&format!("{url}{sep}options=-c%20jit%3Doff"))
        .err()
        .expect("PgBouncer refuses startup options");
    assert!(
        format!("{refused:?}").contains("unsupported startup parameter"),
        "{refused:?}"
    );
    let mut a = connect(&url).unwrap();
    let mut b = connect(&url).unwrap();
    let backend = |client: &mut Client| -> i32 {
        client
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0)
    };
    let first = backend(&mut a);
    // PgBouncer hands out the server session used last first.
    assert_eq!(
        backend(&mut b),
        first,
        "the other client's next transaction gets the same server session"
    );
    // And a client's own transaction keeps its session to the end.
    let mut tx = a.transaction().unwrap();
    let held: i32 = tx.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    assert_ne!(
        backend(&mut b),
        held,
        "a session in a transaction is not shared"
    );
    tx.commit().unwrap();
}
