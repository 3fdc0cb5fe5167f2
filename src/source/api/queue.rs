//! The job queue: due jobs waiting for a task, and the task budget of each job class. Pure: it
//! holds no tasks and does no I/O; the loop ([`super::Poller`]) spawns what it hands out.
//!
//! A job is queued when due and becomes a task when its class has room, so 10,000 due
//! workspaces are 10,000 small queue entries, not 10,000 tasks each holding a walk's buffers
//! while waiting for an in-flight slot.

use std::collections::VecDeque;

use crate::honcho::ApiVersion;

use super::round::Membership;
use super::schedule::JobKind;

/// Status and head polls (a request or two each) and full walks (up to the page cap) have
/// separate task budgets ([`task_budget`]), so short polls never wait for a long walk to end
/// before starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobClass {
    /// Status and head polls.
    Short = 0,
    /// Full walks.
    Walk = 1,
}

impl JobClass {
    /// The class of a job kind.
    pub fn of(kind: JobKind) -> Self {
        match kind {
            JobKind::Status | JobKind::Head => JobClass::Short,
            JobKind::Walk => JobClass::Walk,
        }
    }
}

/// Tasks a class may run at once, for `concurrency` requests in flight. Requests in flight are
/// capped by `poll.concurrency` anyway, but a job also waits out its retries' backoff without a
/// request in flight, so the budgets leave room for jobs of failing workspaces: short polls are
/// small (64 of them, or 8 per request slot), walks hold their buffers (2 per request slot).
pub fn task_budget(class: JobClass, concurrency: usize) -> usize {
    let concurrency = concurrency.max(1);
    match class {
        JobClass::Short => (8 * concurrency).max(64),
        JobClass::Walk => 2 * concurrency,
    }
}

/// One due job waiting for a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    /// Its workspace.
    pub workspace: String,
    /// What it asks.
    pub kind: JobKind,
    /// The API version to ask on.
    pub version: ApiVersion,
    /// Whether its round waits for it.
    pub membership: Membership,
}

/// Due jobs per [`JobClass`], and the tasks each class runs.
#[derive(Debug)]
pub struct JobQueue {
    /// `poll.concurrency`, for the budgets.
    concurrency: usize,
    /// Waiting jobs, per class, oldest first.
    queued: [VecDeque<QueuedJob>; 2],
    /// Tasks running, per class.
    launched: [usize; 2],
}

impl JobQueue {
    /// An empty queue for `concurrency` requests in flight.
    pub fn new(concurrency: usize) -> Self {
        JobQueue {
            concurrency,
            queued: [VecDeque::new(), VecDeque::new()],
            launched: [0, 0],
        }
    }

    /// Queues a due job.
    pub fn push(&mut self, job: QueuedJob) {
        self.queued[JobClass::of(job.kind) as usize].push_back(job);
    }

    /// The next job to launch as a task, short polls first, while its class has room; counts it
    /// as launched.
    pub fn next_launch(&mut self) -> Option<QueuedJob> {
        for class in [JobClass::Short, JobClass::Walk] {
            let index = class as usize;
            if self.launched[index] < task_budget(class, self.concurrency)
                && let Some(job) = self.queued[index].pop_front()
            {
                self.launched[index] += 1;
                return Some(job);
            }
        }
        None
    }

    /// A task of `kind` ended: its class has room for one more.
    pub fn ended(&mut self, kind: JobKind) {
        let index = JobClass::of(kind) as usize;
        self.launched[index] = self.launched[index].saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(workspace: &str, kind: JobKind) -> QueuedJob {
        QueuedJob {
            workspace: workspace.to_string(),
            kind,
            version: ApiVersion::V3,
            membership: Membership::InRound,
        }
    }

    #[test]
    fn budgets_leave_room_for_backoff_short_polls_at_least_64_walks_two_per_slot() {
        assert_eq!(task_budget(JobClass::Short, 4), 64);
        assert_eq!(task_budget(JobClass::Short, 16), 128);
        assert_eq!(task_budget(JobClass::Walk, 4), 8);
        assert_eq!(
            task_budget(JobClass::Walk, 0),
            2,
            "concurrency 0 counts as one slot"
        );
    }

    #[test]
    fn short_polls_launch_before_walks_queued_earlier() {
        let mut queue = JobQueue::new(4);
        queue.push(job("big", JobKind::Walk));
        queue.push(job("small", JobKind::Status));
        queue.push(job("small", JobKind::Head));
        let order: Vec<JobKind> = std::iter::from_fn(|| queue.next_launch())
            .map(|job| job.kind)
            .collect();
        assert_eq!(order, [JobKind::Status, JobKind::Head, JobKind::Walk]);
    }

    #[test]
    fn a_full_class_waits_for_a_task_to_end_and_the_other_class_goes_on() {
        let mut queue = JobQueue::new(1);
        for index in 0..3 {
            queue.push(job(&format!("w{index}"), JobKind::Walk));
        }
        queue.push(job("s", JobKind::Status));
        assert_eq!(
            queue.next_launch().map(|job| job.kind),
            Some(JobKind::Status)
        );
        assert_eq!(
            queue.next_launch().map(|job| job.workspace),
            Some("w0".into())
        );
        assert_eq!(
            queue.next_launch().map(|job| job.workspace),
            Some("w1".into())
        );
        assert_eq!(queue.next_launch(), None, "two walks per request slot");
        queue.ended(JobKind::Walk);
        assert_eq!(
            queue.next_launch().map(|job| job.workspace),
            Some("w2".into())
        );
    }
}
