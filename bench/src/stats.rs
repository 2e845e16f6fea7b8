//! Latency percentiles from recorded samples (microseconds). A run records at most a few
//! hundred thousand samples, so sorting them is cheaper and simpler than a histogram.

/// p50 and p99 in milliseconds (`None` without samples).
pub fn p50_p99_ms(samples: &mut [u32]) -> (Option<f64>, Option<f64>) {
    if samples.is_empty() {
        return (None, None);
    }
    samples.sort_unstable();
    let at = |q: f64| {
        // nearest-rank percentile
        let rank = (q * samples.len() as f64).ceil() as usize;
        samples
            .get(rank.clamp(1, samples.len()) - 1)
            .map(|&us| f64::from(us) / 1000.0)
    };
    (at(0.50), at(0.99))
}

/// The end of a row's measured window, as an offset from its start (microseconds): its nominal
/// end, or, when no operation that started in the window had ended by then, the end of the first
/// one (`ends`: the end offsets of the operations that started in the window). So every row
/// counts at least one operation, whatever the machine's speed.
pub fn window_end(nominal: u64, ends: impl IntoIterator<Item = u64>) -> u64 {
    ends.into_iter()
        .min()
        .map_or(nominal, |first| first.max(nominal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_extends_to_the_first_operation_only_when_none_ended_in_time() {
        assert_eq!(window_end(300, [120, 250, 400]), 300);
        assert_eq!(window_end(300, [300]), 300);
        assert_eq!(window_end(300, [900, 500, 700]), 500);
        assert_eq!(window_end(300, []), 300);
    }

    #[test]
    fn nearest_rank() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(p50_p99_ms(&mut v), (Some(50.0), Some(99.0)));
        let mut one = vec![2500];
        assert_eq!(p50_p99_ms(&mut one), (Some(2.5), Some(2.5)));
        assert_eq!(p50_p99_ms(&mut []), (None, None));
    }
}
