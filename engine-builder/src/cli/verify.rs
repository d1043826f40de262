//! `engine-builder verify`.

use super::common::{open_engine, DeviceArgs, PluginArgs, ThreadArgs};
use anyhow::{bail, Result};
use engine_builder::compare::Tolerance;
use engine_builder::testcase::{judge, order_inputs, read_data_set, read_meta};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The engine file
    engine: PathBuf,
    /// A folder of input_J.pb and output_J.pb (a test_data_set_K)
    data_dir: PathBuf,
    #[command(flatten)]
    threads: ThreadArgs,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    plugins: PluginArgs,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let (engine, mut ctx) = open_engine(&a.engine, &a.plugins, &a.threads, &a.device)?;
    let set = read_data_set(&a.data_dir)?;
    if set.outputs.is_empty() {
        bail!(
            "{} holds no output_J.pb reference outputs",
            a.data_dir.display()
        );
    }
    let fp16 = engine.header().build.precision == "fp16";
    // A case's meta.json (next to its data sets) may set the tolerance.
    let meta = match a.data_dir.canonicalize()?.parent() {
        Some(case) => read_meta(case)?,
        None => None,
    };
    let tol = match (fp16, meta) {
        (false, Some(m)) if m.fp32.is_some() => m.fp32.unwrap_or(Tolerance::FP32),
        (true, Some(m)) if m.fp16.is_some() => m.fp16.unwrap_or(Tolerance::FP16),
        (false, _) => Tolerance::FP32,
        (true, _) => Tolerance::FP16,
    };
    let names: Vec<String> = engine
        .network()
        .inputs
        .iter()
        .map(|i| i.name.clone())
        .collect();
    let inputs = order_inputs(&names, &set.inputs).map_err(anyhow::Error::msg)?;
    let outputs = ctx.run(inputs)?;
    let verdicts = judge(&outputs, &set.outputs, tol).map_err(anyhow::Error::msg)?;
    let mut all_ok = true;
    for (j, ((m, ok), desc)) in verdicts.iter().zip(&engine.header().outputs).enumerate() {
        all_ok &= ok;
        println!(
            "output {j} '{}' {}",
            desc.name,
            jetrt_engine::shape::format_dims(outputs[j].shape())
        );
        println!("  max abs error          {:.3e}", m.max_abs);
        println!(
            "  max error / max|ref|   {:.3e}  (max|ref| {:.4})",
            m.rel, m.max_ref
        );
        println!("  PSNR                   {:.1} dB", m.psnr);
        println!("  argmax agreement       {}/{}", m.argmax.0, m.argmax.1);
        if !m.is_float {
            println!(
                "  exact                  {}",
                if m.exact { "yes" } else { "no" }
            );
        }
        println!("  {}  ({tol})", if *ok { "ok" } else { "OVER TOLERANCE" });
    }
    if all_ok {
        println!("verify: PASS");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("verify: FAIL");
        Ok(ExitCode::from(1))
    }
}
