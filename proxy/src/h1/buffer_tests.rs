use super::*;

#[tokio::test]
async fn reads_accumulate_and_consumed_bytes_go() {
    let mut buffer = Buffer::new(64, 0);
    let mut input: &[u8] = b"hello world";
    assert_eq!(buffer.fill(&mut input).await.expect("read"), 11);
    assert_eq!(buffer.filled(), b"hello world");
    buffer.consume(6);
    assert_eq!(buffer.filled(), b"world");
    assert_eq!(buffer.take(), b"world");
    assert!(buffer.is_empty());
}

#[tokio::test]
async fn a_buffer_grows_up_to_its_cap_and_no_further() {
    let max = MIN_CAPACITY * 2;
    let mut buffer = Buffer::new(1024, max);
    let data = vec![7u8; max + 100];
    let mut input: &[u8] = &data;
    while !buffer.is_full() {
        assert!(buffer.fill(&mut input).await.expect("read") > 0);
    }
    assert_eq!(buffer.filled().len(), max);
    assert!(buffer.fill(&mut input).await.is_err());
    // Consuming makes room again, without growing past the cap.
    buffer.consume(10);
    assert_eq!(buffer.fill(&mut input).await.expect("read"), 10);
    assert_eq!(buffer.filled().len(), max);
    // Emptied, it goes back to its starting size.
    buffer.consume(max);
    buffer.shrink();
    assert!(buffer.is_empty());
    let more = vec![1u8; 4096];
    let mut input: &[u8] = &more;
    assert_eq!(buffer.fill(&mut input).await.expect("read"), 1024);
}
