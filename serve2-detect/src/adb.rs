//! `adb`: an Android Debug Bridge CNXN message.
//!
//! (Not written yet: refuses everything.)

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict};

/// Recognises an Android Debug Bridge CNXN message.
#[derive(Debug, Clone, Default)]
pub struct AdbDetector;

impl Detector for AdbDetector {
    fn detect(&self, _prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        Verdict::NoMatch
    }
}

impl FromConf for AdbDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}
