//! `tinc`: a tinc 1.0 or 1.1 ID line.
//!
//! (Not written yet: refuses everything.)

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict};

/// Recognises a tinc 1.0 or 1.1 ID line.
#[derive(Debug, Clone, Default)]
pub struct TincDetector;

impl Detector for TincDetector {
    fn detect(&self, _prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        Verdict::NoMatch
    }
}

impl FromConf for TincDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}
