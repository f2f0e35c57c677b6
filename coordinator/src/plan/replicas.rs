//! How many copies of every stream and bucket the servers call for
//! ([`reef_proto::servers::replicas_for`]), and which streams must change.

/// The streams whose replica count is not what `servers` servers call for.
/// None are changed while no server is recorded: the cluster then runs
/// with the replicas its coordinators were started with (`reef coordinator
/// --replicas`).
pub(crate) fn to_resize(servers: usize, streams: &[(String, usize)]) -> Vec<String> {
    if servers == 0 {
        return Vec::new();
    }
    let wanted = reef_proto::servers::replicas_for(servers);
    streams
        .iter()
        .filter(|(_, replicas)| *replicas != wanted)
        .map(|(name, _)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::to_resize;

    #[test]
    fn streams_follow_the_servers_once_there_are_any() {
        let streams = vec![("A".to_string(), 1), ("B".to_string(), 3)];
        assert!(to_resize(0, &streams).is_empty(), "no servers recorded");
        assert_eq!(to_resize(1, &streams), ["B"]);
        assert_eq!(to_resize(2, &streams), ["B"]);
        assert_eq!(to_resize(3, &streams), ["A"]);
        assert_eq!(to_resize(5, &streams), ["A"]);
        assert!(to_resize(3, &[]).is_empty());
    }
}
