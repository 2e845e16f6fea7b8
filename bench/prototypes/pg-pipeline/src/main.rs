//! Throwaway prototype (issue 15): a PostgreSQL group-commit batch of SAD spends, its round trips
//! awaited one after another (today's design) or pipelined in two flights (tokio-postgres).
//! Same SQL, same database, same client library; 8 clients each with its own SAD.
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, NoTls};

type Job = (Vec<u8>, oneshot::Sender<()>);

async fn setup(c: &Client) {
    c.batch_execute(
        "DROP TABLE IF EXISTS p_sads, p_head, p_log;
         CREATE TABLE p_sads (sad_hash bytea PRIMARY KEY, remaining int NOT NULL, hashes text, mac bytea);
         CREATE TABLE p_head (id int PRIMARY KEY, seq bigint NOT NULL, hash text NOT NULL);
         INSERT INTO p_head VALUES (1, 0, 'genesis');
         CREATE TABLE p_log (seq bigint PRIMARY KEY, at timestamp NOT NULL, event text, actor text, detail text, prev_hash text, hash text);",
    )
    .await
    .unwrap();
}

const READ: &str = "SELECT sad_hash, remaining, hashes, mac FROM p_sads WHERE sad_hash = ANY($1) ORDER BY sad_hash FOR UPDATE";
const WRITE: &str = "UPDATE p_sads SET remaining = v.r, mac = v.m FROM unnest($1::bytea[], $2::int4[], $3::bytea[]) AS v(h, r, m) WHERE p_sads.sad_hash = v.h";
const MOVE: &str = "UPDATE p_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash";
const HEAD: &str = "SELECT seq, hash FROM p_head WHERE id = 1 FOR UPDATE";
const APPEND: &str = "WITH h AS (UPDATE p_head SET seq = $1, hash = $2 WHERE id = 1) INSERT INTO p_log SELECT s, now()::timestamp, 'signature.sign_hash', 'alice', d, p, x FROM unnest($3::int8[], $4::text[], $5::text[], $6::text[]) AS r(s, d, p, x)";
const INSERT: &str = "WITH h AS (UPDATE p_head SET hash = $1 WHERE id = 1) INSERT INTO p_log SELECT s, now()::timestamp, 'signature.sign_hash', 'alice', d, p, x FROM unnest($2::int8[], $3::text[], $4::text[], $5::text[]) AS r(s, d, p, x)";

fn digest(prev: &str, seq: i64) -> String {
    // stands for the keyed record digest (cheap here: the prototype measures the database)
    format!(
        "{:016x}",
        (prev.len() as i64).wrapping_mul(31).wrapping_add(seq)
    )
}

fn spent(rows: &[tokio_postgres::Row]) -> (Vec<Vec<u8>>, Vec<i32>, Vec<Vec<u8>>) {
    let mut h = Vec::new();
    let mut r = Vec::new();
    let mut m = Vec::new();
    for row in rows {
        h.push(row.get::<_, Vec<u8>>(0));
        r.push(row.get::<_, i32>(1) - 1);
        m.push(vec![7u8; 32]);
    }
    (h, r, m)
}

fn records(
    first: i64,
    prev: &str,
    n: usize,
) -> (Vec<i64>, Vec<String>, Vec<String>, Vec<String>, String) {
    let (mut s, mut d, mut p, mut x) = (vec![], vec![], vec![], vec![]);
    let mut prev = prev.to_owned();
    for i in 0..n as i64 {
        let seq = first + i;
        let h = digest(&prev, seq);
        s.push(seq);
        d.push("{\"sad\":\"..\",\"count\":1}".to_owned());
        p.push(prev.clone());
        x.push(h.clone());
        prev = h;
    }
    (s, d, p, x, prev)
}

struct St {
    read: tokio_postgres::Statement,
    write: tokio_postgres::Statement,
    mov: tokio_postgres::Statement,
    head: tokio_postgres::Statement,
    append: tokio_postgres::Statement,
    insert: tokio_postgres::Statement,
    begin: tokio_postgres::Statement,
    commit: tokio_postgres::Statement,
}

async fn prepare(c: &Client) -> St {
    St {
        read: c.prepare(READ).await.unwrap(),
        write: c.prepare(WRITE).await.unwrap(),
        mov: c.prepare(MOVE).await.unwrap(),
        head: c.prepare(HEAD).await.unwrap(),
        append: c.prepare(APPEND).await.unwrap(),
        insert: c.prepare(INSERT).await.unwrap(),
        begin: c.prepare("BEGIN").await.unwrap(),
        commit: c.prepare("COMMIT").await.unwrap(),
    }
}

/// Today's shape: six round trips, each awaited before the next is sent.
async fn batch_sequential(c: &Client, st: &St, hashes: &[Vec<u8>]) {
    c.batch_execute("BEGIN; SELECT seq FROM p_head WHERE id = 1 FOR UPDATE")
        .await
        .unwrap();
    let rows = c.query(&st.read, &[&hashes]).await.unwrap();
    let (h, r, m) = spent(&rows);
    c.execute(&st.write, &[&h, &r, &m]).await.unwrap();
    let head = c
        .query_one(&st.mov, &[&(hashes.len() as i64)])
        .await
        .unwrap();
    let (last, prev): (i64, String) = (head.get(0), head.get(1));
    let (s, d, p, x, new) = records(last - hashes.len() as i64 + 1, &prev, hashes.len());
    c.execute(&st.insert, &[&new, &s, &d, &p, &x])
        .await
        .unwrap();
    c.execute(&st.commit, &[]).await.unwrap();
}

/// The same batch in two flights: BEGIN, the head (locked first, read) and the SADs sent
/// together; then the write-back, the records with the head, and COMMIT sent together.
async fn batch_pipelined(c: &Client, st: &St, hashes: &[Vec<u8>]) {
    let read_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&hashes];
    let (b, head, rows) = tokio::join!(
        c.execute(&st.begin, &[]),
        c.query_one(&st.head, &[]),
        c.query(&st.read, &read_params)
    );
    b.unwrap();
    let head = head.unwrap();
    let rows = rows.unwrap();
    let (last, prev): (i64, String) = (head.get(0), head.get(1));
    let (h, r, m) = spent(&rows);
    let n = hashes.len();
    let (s, d, p, x, new) = records(last + 1, &prev, n);
    let seq = last + n as i64;
    let write_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&h, &r, &m];
    let append_params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&seq, &new, &s, &d, &p, &x];
    let (w, a, cm) = tokio::join!(
        c.execute(&st.write, &write_params),
        c.execute(&st.append, &append_params),
        c.execute(&st.commit, &[])
    );
    w.unwrap();
    a.unwrap();
    cm.unwrap();
}

async fn run(url: &str, pipelined: bool, clients: usize, secs: f64) -> (f64, f64) {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = prepare(&c).await;
    let writer = tokio::spawn(async move {
        let (mut batches, mut jobs) = (0u64, 0u64);
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while let Ok(j) = rx.try_recv() {
                batch.push(j);
            }
            let hashes: Vec<Vec<u8>> = batch.iter().map(|j| j.0.clone()).collect();
            if pipelined {
                batch_pipelined(&c, &st, &hashes).await;
            } else {
                batch_sequential(&c, &st, &hashes).await;
            }
            batches += 1;
            jobs += batch.len() as u64;
            for (_, done) in batch {
                let _ = done.send(());
            }
        }
        (batches, jobs)
    });
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (tx, stop) = (tx.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let sad = vec![i as u8; 32];
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (done, wait) = oneshot::channel();
                tx.send((sad.clone(), done)).unwrap();
                wait.await.unwrap();
                n += 1;
            }
            n
        }));
    }
    drop(tx);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (batches, jobs) = writer.await.unwrap();
    (total as f64 / elapsed, jobs as f64 / batches as f64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("URL").unwrap();
    let clients: usize = std::env::var("CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let (c, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    setup(&c).await;
    for i in 0..clients.max(64) {
        c.execute(
            "INSERT INTO p_sads VALUES ($1, 1000000000, NULL, $2)",
            &[&vec![i as u8; 32], &vec![0u8; 32]],
        )
        .await
        .unwrap();
    }
    for round in 1..=3 {
        for pipelined in [false, true] {
            let (rate, per) = run(&url, pipelined, clients, 3.0).await;
            println!(
                "round {round} {:<10} c{clients}: {rate:>8.0} spends/s, {per:.1} per batch",
                if pipelined { "pipelined" } else { "sequential" }
            );
        }
    }
}
