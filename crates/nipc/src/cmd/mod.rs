//! Subcommands: one file each; `run` dispatches.

pub mod bench;
pub mod demo;
pub mod pipe;
pub mod shm;

use anyhow::Result;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Pipe(c) => pipe::run(c),
        Command::Shm(c) => shm::run(c),
        Command::Demo => demo::run(),
        Command::Bench(a) => bench::run(a),
        Command::BenchPeer(a) => bench::peer(a),
        Command::DemoPeer(a) => demo::peer(a),
    }
}
