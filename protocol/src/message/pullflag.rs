//! PullSysFlag bits (reference §3.6), carried in a pull request's `sysFlag`.

/// `commitOffset` is valid: the broker stores it.
pub const FLAG_COMMIT_OFFSET: i32 = 0x1;
/// The broker may hold (long-poll) the request.
pub const FLAG_SUSPEND: i32 = 0x2;
/// `subscription` / `expressionType` are authoritative.
pub const FLAG_SUBSCRIPTION: i32 = 0x4;
/// Class filter (obsolete filter servers).
pub const FLAG_CLASS_FILTER: i32 = 0x8;
/// 5.x: sent as LITE_PULL_MESSAGE.
pub const FLAG_LITE_PULL_MESSAGE: i32 = 0x10;

/// Java's `PullSysFlag.buildSysFlag`.
pub fn build_sys_flag(
    commit_offset: bool,
    suspend: bool,
    subscription: bool,
    class_filter: bool,
) -> i32 {
    let mut flag = 0;
    if commit_offset {
        flag |= FLAG_COMMIT_OFFSET;
    }
    if suspend {
        flag |= FLAG_SUSPEND;
    }
    if subscription {
        flag |= FLAG_SUBSCRIPTION;
    }
    if class_filter {
        flag |= FLAG_CLASS_FILTER;
    }
    flag
}

pub fn clear_commit_offset_flag(flag: i32) -> i32 {
    flag & !FLAG_COMMIT_OFFSET
}

pub fn has_commit_offset_flag(flag: i32) -> bool {
    flag & FLAG_COMMIT_OFFSET != 0
}

pub fn has_suspend_flag(flag: i32) -> bool {
    flag & FLAG_SUSPEND != 0
}

pub fn has_subscription_flag(flag: i32) -> bool {
    flag & FLAG_SUBSCRIPTION != 0
}

pub fn has_class_filter_flag(flag: i32) -> bool {
    flag & FLAG_CLASS_FILTER != 0
}

pub fn has_lite_pull_flag(flag: i32) -> bool {
    flag & FLAG_LITE_PULL_MESSAGE != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        assert_eq!(build_sys_flag(true, true, false, false), 3);
        assert_eq!(build_sys_flag(false, true, true, false), 6);
        assert!(has_suspend_flag(3) && has_commit_offset_flag(3) && !has_subscription_flag(3));
        assert_eq!(clear_commit_offset_flag(7), 6);
        assert!(has_class_filter_flag(8) && has_lite_pull_flag(0x10));
    }
}
