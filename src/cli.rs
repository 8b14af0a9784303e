//! The command lines of `posd` and `posctl` (clap definitions only, apart from the code that
//! runs them): the binaries parse with them, and the man pages and shell completions shipped in
//! the package are generated from the same `Command`s (tests/cli_docs.rs fails when the
//! committed ones differ), so the documentation cannot drift from the commands. Imports no
//! other module of this library.

pub mod posctl;
pub mod posd;
