//! Times the packed GEMM on convolution-like shapes: `cargo run --release
//! -p jetrt-engine --example sgemm_speed -- [threads]`. A development aid, not
//! a test.

use jetrt_engine::backend::cpu::sgemm::{gemm, kernel, DenseB, Epilogue, Layout, PackedA};
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    println!("kernel {}, {threads} thread(s)", kernel::kernel().name);
    for &(m, k, n) in &[
        (96, 16, 12544),
        (32, 27, 12544),
        (64, 576, 3136),
        (256, 2304, 196),
        (1280, 320, 49),
        (24, 144, 3136),
    ] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let pa = PackedA::pack(&a, m, k);
        let mut c = vec![0f32; m * n];
        let src = DenseB { data: &b, k, n };
        let mut best = f64::INFINITY;
        pool.install(|| {
            for _ in 0..50 {
                let t = Instant::now();
                gemm(
                    &pa,
                    &src,
                    &mut c,
                    Layout::row_major(n),
                    &Epilogue::default(),
                    threads,
                );
                best = best.min(t.elapsed().as_secs_f64());
            }
        });
        let gflops = 2.0 * (m * n * k) as f64 / best / 1e9;
        println!(
            "m {m:>5} k {k:>5} n {n:>6}: {:>8.3} ms {gflops:>7.1} GFLOP/s",
            best * 1e3
        );
    }
}
