//! `regex` (not written yet: refuses everything).

use serde::Deserialize;

use crate::registry::{ConfError, FromConf};
use crate::{DetectContext, Detector, Verdict};

/// Not written yet.
#[derive(Debug, Clone, Default)]
pub struct RegexDetector;

/// The keys of `regex`'s `conf`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Conf {}

impl Detector for RegexDetector {
    fn detect(&self, _prefix: &[u8], _ctx: &DetectContext<'_>) -> Verdict {
        Verdict::NoMatch
    }
}

impl FromConf for RegexDetector {
    type Conf = Conf;
    fn from_conf(_conf: Conf) -> Result<Self, ConfError> {
        Ok(Self)
    }
}
