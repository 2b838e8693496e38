//! The catalogue of `GET /v1/info`: every filter a spec may name, with an
//! example of its JSON and what it does.

use he_filter::Filter;

use crate::wire::FilterInfo;

/// The filters a spec may name, each with an example of its JSON.
pub(super) fn supported() -> Vec<FilterInfo> {
    let mut examples = Filter::every_builtin();
    examples.push(Filter::Kernel {
        size: 3,
        weights: vec![1, 2, 1, 2, 4, 2, 1, 2, 1],
        divisor: 16,
    });
    let mut out: Vec<FilterInfo> = Vec::new();
    for f in examples {
        let json = serde_json::to_value(&f).unwrap_or_default();
        let name = json
            .get("filter")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        if name.is_empty() || out.iter().any(|i| i.name == name) {
            continue;
        }
        let description = he_filter::BUILTINS
            .iter()
            .find(|b| b.name == name)
            .map_or(
                "any square integer kernel with a divisor (filter2D); --kernel FILE",
                |b| b.summary,
            )
            .to_string();
        out.push(FilterInfo {
            name,
            example: json,
            description,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_parses_back_and_fits_its_own_options() {
        let list = supported();
        assert!(list.len() >= 20, "{}", list.len());
        for info in list {
            let f: Filter = serde_json::from_value(info.example).unwrap();
            he_filter::encrypt_options(std::slice::from_ref(&f)).unwrap();
        }
    }
}
