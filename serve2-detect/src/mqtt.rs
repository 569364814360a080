//! `mqtt`: an MQTT CONNECT packet (3.1, 3.1.1, 5).
//!
//! (Not written yet: refuses everything.)

use crate::registry::{ConfError, FromConf, NoConf};
use crate::{DetectContext, Detector, Verdict};

/// Recognises an MQTT CONNECT packet (3.1, 3.1.1, 5).
#[derive(Debug, Clone, Default)]
pub struct MqttDetector;

impl Detector for MqttDetector {
    fn detect(&self, _prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        Verdict::NoMatch
    }
}

impl FromConf for MqttDetector {
    type Conf = NoConf;
    fn from_conf(_conf: NoConf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}
