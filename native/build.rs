//! Build script: records what the native module was built for, so that `pyproxy --version` can say
//! it (`pyproxy._native.__build__`): the Rust target triple, the Cargo profile and the compiler.
//!
//! These are facts of the build, not of the source: a wheel built with zig against glibc 2.17 and an
//! editable build on a developer's machine carry the same source and different `__build__`s.

use std::env;
use std::process::Command;

fn main() {
    let target = env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    // PROFILE is "release" for the release and bench profiles, "debug" for dev and test.
    let profile = env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rustc (unknown version)".into());
    println!("cargo:rustc-env=PYPROXY_BUILD_TARGET={target}");
    println!("cargo:rustc-env=PYPROXY_BUILD_PROFILE={profile}");
    println!("cargo:rustc-env=PYPROXY_BUILD_RUSTC={version}");
    println!("cargo:rerun-if-changed=native/build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
