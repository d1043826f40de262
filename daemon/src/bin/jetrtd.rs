fn main() -> std::process::ExitCode {
    eprintln!("jetrtd: not implemented yet in this version of jetrt");
    std::process::ExitCode::from(1)
}
