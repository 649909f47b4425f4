//! Whole-system runs on one machine, shared by `oracle demo` (the product) and the development
//! harness (`oracle-xtask`: bench, chaos), so that the product binary never depends on the harness:
//!
//! - [`supervisor`]: the one process supervisor: children that die with their parent, their
//!   output in a log file (and, for a live view, line by line on a channel), stopped with SIGTERM
//!   then SIGKILL, killed (`kill -9`) on drop; Ctrl-C routed to a flag; loopback ports;
//! - [`market`]: a simulator market (bar files shifted to start live now) and its executor
//!   configuration;
//! - [`files`]: the files of a run: a growing log followed line by line, a log's tail, env files,
//!   traces as they finally stand.

pub mod files;
pub mod market;
pub mod supervisor;
