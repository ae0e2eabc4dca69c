//! The reference for `POST /auth/login` in scripts/bench.sh: raw
//! `bcrypt::verify` of one hash at a given cost, on N threads at once, for a
//! given number of seconds. Prints the verifications per second (all threads
//! together) on stdout, alone on its line.
//!
//! Usage: bench_bcrypt COST SECONDS [THREADS]   (THREADS defaults to the cores)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(cost), Some(seconds)) = (
        args.get(1).and_then(|a| a.parse::<u32>().ok()),
        args.get(2).and_then(|a| a.parse::<f64>().ok()),
    ) else {
        eprintln!("usage: bench_bcrypt COST SECONDS [THREADS]");
        std::process::exit(2);
    };
    let threads = args
        .get(3)
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let password = "bench-password";
    let hash = Arc::new(bcrypt::hash(password, cost).expect("cost 4..=31"));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));

    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (hash, stop, done) = (hash.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    assert!(bcrypt::verify(password, &hash).expect("a valid hash"));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    // Verifications still running finish and count: divide by the time they
    // took to finish, not by the nominal duration.
    for worker in workers {
        worker.join().expect("worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let count = done.load(Ordering::Relaxed);
    eprintln!("bcrypt cost {cost}: {count} verifications on {threads} threads in {elapsed:.2} s");
    println!("{:.2}", count as f64 / elapsed);
}
