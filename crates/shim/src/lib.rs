//! libfencepost_shim.so: the part of fencepost that runs inside the traced program.
//!
//! It interposes the allocation surface (`interpose`), keeps the table of live blocks
//! (`table`; fast mode's blocks carry their own headers, `inline`), captures and
//! deduplicates stacks (`stacks`, `unwind`), announces modules
//! (`modules`), writes events to the shared ring (`ring`), and classifies leaks at exit
//! (`leaks`, `process`). It never allocates through the exported `malloc` itself: its own
//! memory comes from `arena`. See ../../shared/DESIGN.md for the rules this code keeps.

#![allow(clippy::missing_safety_doc)]

#[path = "../../analyzer/src/wire.rs"]
#[allow(dead_code)]
mod wire;

mod arena;
mod exec;
mod faults;
mod guard;
mod inline;
mod interpose;
mod leaks;
mod modules;
mod process;
mod ring;
mod sample;
mod stacks;
mod sys;
mod table;
mod threads;
mod unwind;
