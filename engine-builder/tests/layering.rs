//! The builder's converters and optimizer passes reach no backend: they
//! evaluate the IR with `jetrt_engine::eval` and cast with `Tensor::cast`
//! (backends' internals are private to the engine crate, so the compiler
//! refuses anything more; this test keeps even the public backend API out
//! of those modules, whose work must serve every backend alike).

use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir)
        .expect("readable source folder")
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn converters_and_passes_import_no_backend() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for d in ["convert", "optimize"] {
        sources(&src.join(d), &mut files);
    }
    assert!(files.len() > 10, "found only {} sources", files.len());
    let mut offenders = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable source");
        for (i, line) in text.lines().enumerate() {
            if line.contains("jetrt_engine::backend") || line.contains("backend::cpu") {
                offenders.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "converters and passes must not use a backend:\n{}",
        offenders.join("\n")
    );
}
