//! fencepost's analyzer: the pure, out-of-process half of the tool.
//!
//! Records from the shim (through the ring, or a trace file) are decoded ([`decode`]), fed in
//! order to an [`Analyzer`] that tracks every process's heap, modules and stacks, and turned
//! into one [`Report`] value, symbolized and sorted. Renderers ([`text`], the JSON form of
//! [`Report`]) only read that value, so every output format tells the same story.

pub mod analysis;
pub mod annotations;
pub mod baseline;
pub mod decode;
pub mod explain;
pub mod fingerprint;
pub mod html;
pub mod insn;
pub mod memcheck;
pub mod memcheck_text;
pub mod picture;
pub mod report;
pub mod sarif;
pub mod suppress;
pub mod symbolize;
pub mod text;
pub mod timeline;
pub mod wire;
pub mod xml;

pub use analysis::{Analyzer, AnalyzerOptions, SymbolSource, TraceError};
pub use baseline::Baseline;
pub use decode::{read_trace, DecodeError, Event, TraceRecords, TraceWriter};
pub use html::{render_html, HtmlOptions};
pub use memcheck_text::{render_memcheck_text, MemcheckTextOptions};
pub use report::{ErrorKind, LeakKind, Report};
pub use suppress::{SuppressionError, SuppressionSet};
pub use symbolize::Symbolizer;
pub use text::{render_text, LeakCheck, TextOptions};
pub use xml::{render_xml, XmlOptions};

#[cfg(test)]
mod tests;
