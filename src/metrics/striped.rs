//! A histogram every worker thread observes at once — the delivery latency,
//! once per message per recipient. A Prometheus `Histogram` shared by every
//! thread made each delivery contend for the same cache lines, and its
//! observation is several atomic read-modify-writes (a float sum updated by
//! compare-and-swap among them): 3–4 % of a node's CPU under a 1,000-member
//! fan-out. This one keeps a stripe of plain counters per thread (bucket
//! counts and a sum in whole microseconds, each one `fetch_add`), and a scrape
//! adds the stripes up into the one series the exposition shows.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Histogram, Metric, MetricFamily, MetricType};

/// Stripes: more than a node has worker threads, so that few threads share one.
const STRIPES: usize = 16;

/// Buckets a stripe holds at most (bounds, and one above every bound).
const MAX_BUCKETS: usize = 31;

/// One thread's counters, on cache lines of its own. The buckets are held
/// inline: boxed apart, the stripes' bucket arrays were neighbours on the
/// heap, so two threads' stripes could share a line. (Measured, this did not
/// change what an observation costs under fan-out: its locked add waits for
/// the core's earlier stores, see `docs/design.md`, "The per-recipient path".)
#[repr(align(128))]
struct Stripe {
    /// Observations per bucket (not cumulative); the last used is above every bound.
    buckets: [AtomicU64; MAX_BUCKETS],
    /// The sum of the observations, in microseconds.
    sum_micros: AtomicU64,
}

/// A histogram of seconds observed from many threads; cheap to clone.
#[derive(Clone)]
pub struct StripedHistogram {
    inner: Arc<Inner>,
}

struct Inner {
    desc: Desc,
    /// Upper bounds, ascending.
    bounds: Vec<f64>,
    stripes: Vec<Stripe>,
}

impl StripedHistogram {
    /// A histogram named `name` with the upper bounds `bounds` (ascending), in seconds.
    pub fn new(name: &str, help: &str, bounds: &[f64]) -> prometheus::Result<Self> {
        let desc = Desc::new(name.to_owned(), help.to_owned(), Vec::new(), HashMap::new())?;
        if bounds.len() >= MAX_BUCKETS {
            return Err(prometheus::Error::Msg(format!("{name}: at most {} bounds", MAX_BUCKETS - 1)));
        }
        let stripes = (0..STRIPES)
            .map(|_| Stripe {
                buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                sum_micros: AtomicU64::new(0),
            })
            .collect();
        Ok(Self { inner: Arc::new(Inner { desc, bounds: bounds.to_vec(), stripes }) })
    }

    /// Observes `seconds` in this thread's stripe.
    pub fn observe(&self, seconds: f64) {
        let inner = &*self.inner;
        let stripe = &inner.stripes[stripe()];
        let bucket = inner.bounds.iter().position(|bound| seconds <= *bound).unwrap_or(inner.bounds.len());
        stripe.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        // Whole microseconds (truncation intended; negative values count as 0).
        stripe.sum_micros.fetch_add((seconds * 1e6).max(0.0) as u64, Ordering::Relaxed);
    }
}

/// This thread's stripe, handed out in turn on first use.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|stripe| *stripe)
}

impl Collector for StripedHistogram {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.inner.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let inner = &*self.inner;
        let mut counts = vec![0_u64; inner.bounds.len() + 1];
        let mut sum_micros = 0_u64;
        for stripe in &inner.stripes {
            for (total, bucket) in counts.iter_mut().zip(stripe.buckets.iter()) {
                *total += bucket.load(Ordering::Relaxed);
            }
            sum_micros += stripe.sum_micros.load(Ordering::Relaxed);
        }
        let mut cumulative = 0;
        let buckets = inner
            .bounds
            .iter()
            .zip(&counts)
            .map(|(bound, count)| {
                cumulative += count;
                let mut bucket = Bucket::default();
                bucket.set_upper_bound(*bound);
                bucket.set_cumulative_count(cumulative);
                bucket
            })
            .collect();
        let mut histogram = Histogram::default();
        histogram.set_sample_count(counts.iter().sum());
        histogram.set_sample_sum(sum_micros as f64 / 1e6);
        histogram.set_bucket(buckets);
        let mut metric = Metric::default();
        metric.set_histogram(histogram);
        let mut family = MetricFamily::default();
        family.set_name(inner.desc.fq_name.clone());
        family.set_help(inner.desc.help.clone());
        family.set_field_type(MetricType::HISTOGRAM);
        family.set_metric(vec![metric]);
        vec![family]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_from_many_threads_show_as_one_histogram() {
        let striped = StripedHistogram::new("t_seconds", "test", &[0.1, 1.0]).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..40 {
                let striped = striped.clone();
                scope.spawn(move || {
                    for value in [0.05, 0.5, 5.0] {
                        striped.observe(value);
                    }
                });
            }
        });
        let families = striped.collect();
        assert_eq!(families.len(), 1);
        assert_eq!(families[0].name(), "t_seconds");
        assert_eq!(families[0].get_metric().len(), 1);
        let histogram = families[0].get_metric()[0].get_histogram();
        assert_eq!(histogram.get_sample_count(), 120);
        assert!((histogram.get_sample_sum() - 40.0 * 5.55).abs() < 1e-6, "{}", histogram.get_sample_sum());
        let cumulative: Vec<u64> = histogram.get_bucket().iter().map(|b| b.cumulative_count()).collect();
        assert_eq!(cumulative, vec![40, 80]);
        // The text exposition adds the +Inf bucket from the count.
        let mut text = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &families, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("t_seconds_bucket{le=\"+Inf\"} 120"), "{text}");
        assert!(text.contains("# TYPE t_seconds histogram"), "{text}");
    }

    #[test]
    fn each_stripe_is_on_cache_lines_of_its_own() {
        // Counters of two threads never share a line (128: two 64-byte lines, as the
        // adjacent-line prefetcher pulls pairs).
        assert_eq!(align_of::<Stripe>(), 128);
        assert_eq!(size_of::<Stripe>() % 128, 0);
        let striped = StripedHistogram::new("t_seconds", "test", &[0.1, 1.0]).unwrap();
        let at = |i: usize| std::ptr::from_ref(&striped.inner.stripes[i]) as usize;
        assert_eq!(at(1) - at(0), size_of::<Stripe>());
        assert_eq!(at(0) % 128, 0);
    }

    #[test]
    fn more_bounds_than_a_stripe_holds_are_refused() {
        let bounds: Vec<f64> = (1..=MAX_BUCKETS).map(|n| n as f64).collect();
        assert!(StripedHistogram::new("t_seconds", "test", &bounds).is_err());
        assert!(StripedHistogram::new("t_seconds", "test", &bounds[..MAX_BUCKETS - 1]).is_ok());
    }
}
