//! The filter spec of a job: the chain a client asks for, as the JSON
//! part of the envelope (`{"filters": [{"filter": "mean", "k": 3}]}`).
//! Each filter is `he_filter`'s [`Filter`], whose serde form is the API's.

use he_filter::Filter;
use serde::{Deserialize, Serialize};

/// What the client asks for: the filters to apply, in order, as
/// `{"filters": [{"filter": "gaussian", "k": 5, "sigma": null}, {"filter": "sharpen"}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The filter chain, applied first to last.
    pub filters: Vec<Filter>,
}

impl JobSpec {
    /// A spec for `filters`, applied first to last.
    #[must_use]
    pub fn new(filters: Vec<Filter>) -> Self {
        JobSpec { filters }
    }

    /// What the client must encrypt its image with so that the server can
    /// run this chain: the halo and slot width the whole chain needs.
    pub fn encrypt_options(&self) -> he_filter::Result<enc_image::EncryptOptions> {
        he_filter::encrypt_options(&self.filters)
    }

    /// The labels of the filters, in order, as the server reports them and
    /// writes them into the result's history.
    #[must_use]
    pub fn labels(&self) -> Vec<String> {
        self.filters.iter().map(Filter::label).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_form_is_the_documented_one() {
        let spec = JobSpec::new(vec![Filter::Mean { k: 3 }, Filter::Sharpen]);
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            json,
            r#"{"filters":[{"filter":"mean","k":3},{"filter":"sharpen"}]}"#
        );
        assert_eq!(serde_json::from_str::<JobSpec>(&json).unwrap(), spec);
        assert!(serde_json::from_str::<JobSpec>(r#"{"filters":[],"x":1}"#).is_err());
        assert_eq!(spec.labels().len(), 2);
        let opts = spec.encrypt_options().unwrap();
        assert!(
            matches!(opts.layout, enc_image::Layout::Packed { halo, .. } if halo >= 1),
            "a 3x3 mean needs a halo: {opts:?}"
        );
    }
}
