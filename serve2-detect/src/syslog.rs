//! `syslog`: syslog over TCP (RFC 3164, RFC 5424, octet-counted or not).
//!
//! (Not written yet: refuses everything.)

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict};

/// Recognises syslog over TCP (RFC 3164, RFC 5424, octet-counted or not).
#[derive(Debug, Clone, Default)]
pub struct SyslogDetector;

impl Detector for SyslogDetector {
    fn detect(&self, _prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        Verdict::NoMatch
    }
}

impl FromConf for SyslogDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}
