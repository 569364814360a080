//! `postgres`: a PostgreSQL SSLRequest, GSSENCRequest or StartupMessage.
//!
//! (Not written yet: refuses everything.)

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict};

/// Recognises a PostgreSQL SSLRequest, GSSENCRequest or StartupMessage.
#[derive(Debug, Clone, Default)]
pub struct PostgresDetector;

impl Detector for PostgresDetector {
    fn detect(&self, _prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        Verdict::NoMatch
    }
}

impl FromConf for PostgresDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}
