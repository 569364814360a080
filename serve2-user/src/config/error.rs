//! Configuration errors that name the file, the JSON path, the line and
//! column, and what was expected.

use std::fmt;
use std::path::PathBuf;

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// Where a value sits in the document, e.g. `protocols[2].conf.cert`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonPath(pub Vec<Segment>);

impl JsonPath {
    /// This path extended by an object key.
    pub fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    /// Appends a path reported by `serde_path_to_error`.
    pub fn join_serde(&self, other: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as S;
        let mut path = self.clone();
        for segment in other.iter() {
            match segment {
                S::Seq { index } => path.0.push(Segment::Index(*index)),
                S::Map { key } => path.0.push(Segment::Key(key.clone())),
                S::Enum { variant } => path.0.push(Segment::Key(variant.clone())),
                S::Unknown => {}
            }
        }
        path
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// One thing wrong in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where in the document.
    pub path: JsonPath,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column (in characters), 0 when unknown.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {} column {}: ", self.line, self.column)?;
        }
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration.
    Invalid {
        /// The file.
        file: PathBuf,
        /// Everything found wrong, in document order where known.
        problems: Vec<Problem>,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { file, source } => {
                write!(f, "{}: cannot read configuration: {source}", file.display())
            }
            ConfigError::Invalid { file, problems } => {
                let plural = if problems.len() == 1 { "" } else { "s" };
                write!(f, "{}: invalid configuration ({} problem{plural})", file.display(), problems.len())?;
                for problem in problems {
                    write!(f, "\n  {}:", file.display())?;
                    if problem.line > 0 {
                        write!(f, "{}:{}:", problem.line, problem.column)?;
                    }
                    write!(f, " {}: {}", problem.path, problem.message)?;
                }
                Ok(())
            }
        }
    }
}

impl ConfigError {
    /// The problems found, empty for [`ConfigError::Read`].
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Byte offset of a 1-based line and column (in characters).
pub fn offset_of(source: &str, line: usize, column: usize) -> usize {
    let line_start: usize = source.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    let rest = &source[line_start.min(source.len())..];
    let within: usize = rest.chars().take(column.saturating_sub(1)).map(char::len_utf8).sum();
    line_start + within
}
