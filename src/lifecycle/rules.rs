//! The lifecycle's rules, pure: a recorded state and what was observed
//! of the guest under its lock decide what a settle does.

use crate::progress::Stage;
use crate::state::{Phase, VmState};

/// What the guest shows, read while holding its lock. `Default` is the
/// guest not looked at (see [`observes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observation {
    pub running: bool,
    /// Whether the console log exists at all (xl without xenconsoled's
    /// guest logging has none: then nothing can be known from it).
    pub console: bool,
    /// What a clone's identity unit printed: applied, refused, nothing
    /// (only a clone's is read).
    pub identity: Option<bool>,
    /// The installer's last stage on the console (only an installer's is
    /// read).
    pub stage: Option<Stage>,
}

/// Whether [`decide`] looks at the guest in `phase` at all: a finished
/// install's record is kept whatever its guest shows.
pub fn observes(phase: Phase) -> bool {
    !matches!(phase, Phase::Installed | Phase::Failed | Phase::Cancelled)
}

/// What a settle does to a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do.
    Keep,
    /// The guest runs: a `starting` record whose request was killed after
    /// the start becomes `installing`.
    Installing,
    /// The install ended well. A clone's seed is detached and removed.
    Installed { reason: Option<String> },
    /// The install ended badly. `wipe`: the clone on the volume is
    /// discarded (its identity never applied and its guest has stopped or
    /// is stopped first).
    Failed { reason: String, wipe: bool },
    /// `--no-start` media outlived their time; a prepared clone goes too.
    Expired { after_s: u64 },
}

/// The state machine's rules. Pure: the state, what was observed under
/// the lock, the time, and how long `--no-start` media may stay.
pub fn decide(st: &VmState, o: &Observation, now: u64, media_ttl_s: u64) -> Action {
    let clone = st.template.is_some();
    match st.phase {
        Phase::Installed | Phase::Failed | Phase::Cancelled => Action::Keep,
        Phase::Prepared if !o.running && now.saturating_sub(st.prepared_at) >= media_ttl_s => {
            Action::Expired { after_s: media_ttl_s }
        }
        Phase::Prepared => Action::Keep,
        // The request that saved `starting` is gone (we hold its lock). The
        // console was moved aside before `starting` was saved, so a console
        // now is this start's: the guest ran.
        Phase::Starting if o.running => Action::Installing,
        Phase::Starting if !o.console => Action::Failed {
            reason: "the request that started the guest was interrupted before the guest ran; install again".into(),
            // Nothing shows it ever ran, nor that it did not: not a guess
            // to wipe on.
            wipe: false,
        },
        Phase::Starting | Phase::Installing if clone => match (o.identity, o.running) {
            (Some(true), _) => Action::Installed { reason: None },
            (Some(false), _) => Action::Failed {
                reason: "the clone refused its identity seed and powered off; see the console log".into(),
                wipe: true,
            },
            (None, true) => Action::Keep,
            (None, false) if !o.console => Action::Installed {
                reason: Some(
                    "no console log: the identity could not be confirmed; turn on the hypervisor's console logging"
                        .into(),
                ),
            },
            (None, false) => Action::Failed {
                reason: "the clone stopped before applying its identity; see the console log".into(),
                wipe: true,
            },
        },
        Phase::Starting | Phase::Installing => match (o.running, o.stage) {
            (true, _) => Action::Keep,
            (false, Some(Stage::Finished)) => Action::Installed { reason: None },
            // No console log (xl without guest logging): the guest went
            // away on its own, as the installer makes it at the end.
            (false, None) if !o.console => Action::Installed { reason: None },
            // A log with no stage at all: the guest never got as far as
            // the kernel's first line.
            (false, None) => Action::Failed {
                reason: "the installer guest stopped before it showed any stage of the install; see the console log"
                    .into(),
                wipe: false,
            },
            (false, Some(stage)) => Action::Failed {
                reason: format!(
                    "the installer guest stopped before the install finished (last stage: {}); see the console log",
                    stage.as_str()
                ),
                wipe: false,
            },
        },
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Driver;
    use crate::types::{ImageName, TemplateName};

    fn st(phase: Phase, clone: bool) -> VmState {
        let mut s = VmState::prepared(
            Some(ImageName::parse("deb12").unwrap()),
            Driver::Qemu,
            clone.then(|| TemplateName::parse("tpl").unwrap()),
        );
        s.phase = phase;
        s.prepared_at = 1000;
        s
    }

    fn obs(running: bool, console: bool, identity: Option<bool>, stage: Option<Stage>) -> Observation {
        Observation { running, console, identity, stage }
    }

    #[test]
    fn a_clone_is_wiped_only_when_stopped_with_a_console_that_never_showed_the_identity_applied() {
        for running in [false, true] {
            for console in [false, true] {
                for identity in [None, Some(true), Some(false)] {
                    if identity.is_some() && !console {
                        continue; // what the unit printed comes from the console
                    }
                    for phase in [Phase::Starting, Phase::Installing, Phase::Installed, Phase::Prepared] {
                        let a = decide(&st(phase, true), &obs(running, console, identity, None), 1001, 3600);
                        if let Action::Failed { wipe: true, .. } = a {
                            assert!(identity != Some(true), "{phase:?} {running} {console} {identity:?}");
                            assert!(console, "wiped with no console: {phase:?} {running} {identity:?}");
                        }
                        if phase == Phase::Installed {
                            assert_eq!(a, Action::Keep);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn applied_identity_is_installed_even_while_running() {
        let a = decide(&st(Phase::Installing, true), &obs(true, true, Some(true), None), 1001, 3600);
        assert_eq!(a, Action::Installed { reason: None });
    }

    #[test]
    fn a_running_starting_record_becomes_installing() {
        assert_eq!(decide(&st(Phase::Starting, false), &obs(true, true, None, None), 1001, 3600), Action::Installing);
        assert_eq!(decide(&st(Phase::Starting, true), &obs(true, false, None, None), 1001, 3600), Action::Installing);
    }

    #[test]
    fn an_interrupted_start_with_no_sign_of_a_guest_fails_without_a_wipe() {
        let a = decide(&st(Phase::Starting, true), &obs(false, false, None, None), 1001, 3600);
        assert!(matches!(a, Action::Failed { wipe: false, .. }), "{a:?}");
    }

    #[test]
    fn prepared_media_expire_only_when_old_and_not_running() {
        let s = st(Phase::Prepared, false);
        assert_eq!(decide(&s, &obs(false, false, None, None), 1000 + 3599, 3600), Action::Keep);
        assert_eq!(decide(&s, &obs(false, false, None, None), 1000 + 3600, 3600), Action::Expired { after_s: 3600 });
        assert_eq!(decide(&s, &obs(true, true, None, None), 1000 + 9999, 3600), Action::Keep);
    }

    #[test]
    fn an_installer_that_stops_early_fails_and_one_that_finished_is_installed() {
        let s = st(Phase::Installing, false);
        assert!(matches!(
            decide(&s, &obs(false, true, None, Some(Stage::NetworkConfigured)), 1001, 3600),
            Action::Failed { wipe: false, .. }
        ));
        assert_eq!(decide(&s, &obs(false, true, None, Some(Stage::Finished)), 1001, 3600), Action::Installed { reason: None });
        assert_eq!(decide(&s, &obs(true, true, None, Some(Stage::Finished)), 1001, 3600), Action::Keep);
    }

    #[test]
    fn an_installer_that_stops_with_a_console_but_no_stage_fails_and_with_no_console_is_installed() {
        for phase in [Phase::Starting, Phase::Installing] {
            let s = st(phase, false);
            let a = decide(&s, &obs(false, true, None, None), 1001, 3600);
            assert!(matches!(a, Action::Failed { wipe: false, .. }), "{phase:?} {a:?}");
            assert_eq!(decide(&s, &obs(true, true, None, None), 1001, 3600), if phase == Phase::Starting { Action::Installing } else { Action::Keep });
        }
        let a = decide(&st(Phase::Installing, false), &obs(false, false, None, None), 1001, 3600);
        assert_eq!(a, Action::Installed { reason: None });
    }

    #[test]
    fn a_phase_that_is_not_observed_is_kept_whatever_the_guest_shows() {
        let stages = [None, Some(Stage::Booted), Some(Stage::Finished)];
        for phase in [Phase::Prepared, Phase::Starting, Phase::Installing, Phase::Installed, Phase::Failed, Phase::Cancelled] {
            for clone in [false, true] {
                for (running, console, identity, stage) in observations(&stages) {
                    let a = decide(&st(phase, clone), &obs(running, console, identity, stage), 1000 + 99_999, 3600);
                    if !observes(phase) {
                        assert_eq!(a, Action::Keep, "{phase:?} {clone}");
                    }
                }
            }
        }
        assert!(observes(Phase::Prepared) && observes(Phase::Starting) && observes(Phase::Installing));
        assert!(!observes(Phase::Installed) && !observes(Phase::Failed) && !observes(Phase::Cancelled));
    }

    fn observations(stages: &[Option<Stage>]) -> Vec<(bool, bool, Option<bool>, Option<Stage>)> {
        let mut v = Vec::new();
        for running in [false, true] {
            for console in [false, true] {
                for identity in [None, Some(true), Some(false)] {
                    for stage in stages {
                        v.push((running, console, identity, *stage));
                    }
                }
            }
        }
        v
    }
}
