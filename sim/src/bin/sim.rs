//! The simulator's command line. `SIM_SEEDS` seeds of `SIM_OPS` ops each (from `SIM_FIRST_SEED`), or
//! one seed with `SIM_SEED`; `SIM_TABS` tabs share the store. A violation prints the command that
//! replays it and the events that led to it, and exits 1.

use std::time::Instant;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let ops = env("SIM_OPS", 1_000) as usize;
    let tabs = env("SIM_TABS", 1) as usize;
    let (first, seeds) = match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => (seed, 1),
        None => (env("SIM_FIRST_SEED", 0), env("SIM_SEEDS", 1_000)),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    if std::env::var("SIM_KEEP_GOING").is_ok_and(|v| v == "1") {
        let (stats, violations) = outbox_sim::run_seeds(first, seeds, ops, tabs, threads, false);
        println!(
            "outbox-sim: {seeds} seeds, {} ops in the seeds that passed, {tabs} tabs: {} violations in \
             {:.1} s",
            stats.ops,
            violations.len(),
            started.elapsed().as_secs_f64()
        );
        println!("  {stats:?}");
        let (all, without_faults) = stats.sends_per_op();
        println!(
            "  sends per op: {all:.3} ({without_faults:.3} without the resends faults caused); {} \
             promotions, {} adopted ({} by the scan), {} rebuilds",
            stats.promotions, stats.adopted, stats.adopted_by_scan, stats.rebuilds
        );
        for v in &violations {
            println!(
                "  seed {}: {}",
                v.seed,
                v.message.chars().take(160).collect::<String>()
            );
        }
        std::process::exit(i32::from(!violations.is_empty()));
    }
    match outbox_sim::run_many(first, seeds, ops, tabs, threads) {
        Ok(stats) => {
            println!(
                "outbox-sim: {seeds} seeds, {} ops, {} tabs: 0 violations in {:.1} s",
                stats.ops,
                tabs,
                started.elapsed().as_secs_f64()
            );
            println!("  {stats:?}");
            let (all, without_faults) = stats.sends_per_op();
            let faultless =
                stats.faultless_op_sends as f64 / stats.faultless_ops_sent.max(1) as f64;
            println!(
                "  sends per op: {all:.3} ({without_faults:.3} without the resends faults caused; \
                 {faultless:.3} in seeds with no fault); {} crashes, {} promotions, {} ops adopted \
                 ({} found by the scan)",
                stats.crashes, stats.promotions, stats.adopted, stats.adopted_by_scan
            );
        }
        Err(v) => {
            eprintln!("outbox-sim: VIOLATION at seed {}: {}", v.seed, v.message);
            eprintln!("  profile: {}", v.profile);
            eprintln!("  last events:");
            for line in &v.trace {
                eprintln!("    {line}");
            }
            eprintln!(
                "  replay: {}",
                outbox_sim::replay_command(v.seed, ops, tabs)
            );
            std::process::exit(1);
        }
    }
}
