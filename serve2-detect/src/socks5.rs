//! `socks5`: a SOCKS5 greeting.
//!
//! (Not written yet: refuses everything.)

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict};

/// Recognises a SOCKS5 greeting.
#[derive(Debug, Clone, Default)]
pub struct Socks5Detector;

impl Detector for Socks5Detector {
    fn detect(&self, _prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        Verdict::NoMatch
    }
}

impl FromConf for Socks5Detector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}
