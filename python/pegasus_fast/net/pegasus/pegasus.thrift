// The messages pegasus_fast serves on its Pegasus-protocol port: our own description, written
// from what Apache Pegasus's clients send and expect (docs/pegasus-protocol.md). The codec is
// hand-written (requests.py, replies.py); this file is its contract, not an input to a generator.
//
// Pegasus's own base types travel bare, in fields whose Thrift type is STRUCT:
//   blob        a Thrift binary (i32 length, bytes)
//   error_code  a Thrift string: the error's name, e.g. "ERR_OK"
//   gpid        an i64: app id in the low 32 bits, partition index in the high 32
//   rpc_address an i64: IPv4 in bits 63..32, port in 31..16, host type (1 = IPv4) in 1..0
// A generic Thrift reader that skips such a field as a struct misreads it.

typedef binary blob          // on the wire: field type STRUCT, payload a binary
typedef string error_code    // on the wire: field type STRUCT, payload a string
typedef i64 gpid             // on the wire: field type STRUCT, payload an i64
typedef i64 rpc_address      // on the wire: field type STRUCT, payload an i64

// -- the v1 request header's meta (v0 carries these in its fixed 48 bytes) --------------------
struct request_meta {
    1: i32 app_id;
    2: i32 partition_index;
    3: i32 client_timeout;      // ignored
    4: i64 partition_hash;      // ignored: we hash the key ourselves
    5: bool is_backup_request;  // ignored: one replica
}

// -- the meta query -----------------------------------------------------------------------
struct query_cfg_request {
    1: string app_name;
    2: list<i32> partition_indices;  // empty: every partition
}

struct partition_configuration {
    1: gpid pid;
    2: i64 ballot;                       // 1: a single node's partitions never change hands
    3: i32 max_replica_count;            // 1
    4: rpc_address primary;              // the address the client reached
    5: list<rpc_address> secondaries;    // empty
    6: list<rpc_address> last_drops;     // empty
    7: i64 last_committed_decree;
    8: i32 partition_flags;              // 0
    // 9..11 (host_port forms) are never sent: their payload is not a struct either
}

struct query_cfg_response {
    1: error_code err;          // ERR_OK, or ERR_OBJECT_NOT_FOUND for an unknown table
    2: i32 app_id;
    3: i32 partition_count;
    4: bool is_stateful;        // true when found
    5: list<partition_configuration> partitions;
}

// -- data -----------------------------------------------------------------------------------
// `error` fields are RocksDB status codes: 0 ok, 1 not found, 2 corruption, 3 not supported,
// 4 invalid argument, 5 I/O error, 7 incomplete, 13 try again. Keys are Pegasus's rocksdb-style key:
// u16 big-endian hash key length, hash key, sort key.

struct update_request {
    1: blob key;
    2: blob value;
    3: i32 expire_ts_seconds;   // absolute, seconds since 2016-01-01 UTC; 0: no TTL
    // 4..7 (update type, check-and-set details) are skipped: plain puts only
}

struct update_response {
    1: i32 error;
    2: i32 app_id;
    3: i32 partition_index;
    4: i64 decree;
    5: string server;           // "host:port" the client reached
}

struct read_response {
    1: i32 error;
    2: blob value;              // always sent, empty when not found
    3: i32 app_id;
    4: i32 partition_index;
    6: string server;
}

struct ttl_response {
    1: i32 error;
    2: i32 ttl_seconds;         // -1: no TTL
    3: i32 app_id;
    4: i32 partition_index;
    6: string server;
}

struct count_response {
    1: i32 error;
    2: i64 count;
    3: i32 app_id;
    4: i32 partition_index;
    6: string server;
}

struct key_value {
    1: blob key;
    2: blob value;
    3: optional i32 expire_ts_seconds;  // never sent
}

struct multi_put_request {
    1: blob hash_key;
    2: list<key_value> kvs;
    3: i32 expire_ts_seconds;
}

struct multi_remove_request {
    1: blob hash_key;
    2: list<blob> sort_keys;
    3: i64 max_count;           // ignored (deprecated in Pegasus)
}

struct multi_remove_response {
    1: i32 error;
    2: i64 count;               // the number of sort keys asked, as Pegasus counts
    3: i32 app_id;
    4: i32 partition_index;
    5: i64 decree;
    6: string server;
}

struct multi_get_request {
    1: blob hash_key;
    2: list<blob> sort_keys;    // given: these keys; empty: the hash key's range
    3: i32 max_kv_count;        // <= 0: the server's cap (3000)
    4: i32 max_kv_size;         // <= 0: no limit
    5: bool no_value;
    6: blob start_sortkey;
    7: blob stop_sortkey;       // empty: to the end of the hash key
    8: bool start_inclusive;    // whether the empty sort key is returned
    9: bool stop_inclusive;
    10: i32 sort_key_filter_type;  // 0 none, 1 anywhere, 2 prefix, 3 postfix
    11: blob sort_key_filter_pattern;
    12: bool reverse;
}

struct multi_get_response {
    1: i32 error;               // 7 (incomplete) when a limit cut the answer
    2: list<key_value> kvs;     // in sort key order (range) or in the order asked (sort_keys)
    3: i32 app_id;
    4: i32 partition_index;
    6: string server;
}

struct incr_request {
    1: blob key;
    2: i64 increment;
    3: i32 expire_ts_seconds;   // 0 keeps the TTL, > 0 sets it (absolute), < 0 clears it
}

struct incr_response {
    1: i32 error;
    2: i64 new_value;
    3: i32 app_id;
    4: i32 partition_index;
    5: i64 decree;
    6: string server;
}

struct check_and_set_request {
    1: blob hash_key;
    2: blob check_sort_key;
    3: i32 check_type;          // cas_check_type, data_api.CheckType
    4: blob check_operand;
    5: bool set_diff_sort_key;
    6: blob set_sort_key;       // used only if set_diff_sort_key
    7: blob set_value;
    8: i32 set_expire_ts_seconds;
    9: bool return_check_value;
}

struct check_and_set_response {  // check_and_mutate_response: the same fields
    1: i32 error;               // 13 (try again) when the check did not pass
    2: bool check_value_returned;
    3: bool check_value_exist;
    4: blob check_value;
    5: i32 app_id;
    6: i32 partition_index;
    7: i64 decree;
    8: string server;
}

struct mutate {
    1: i32 operation;           // 0 put, 1 delete
    2: blob sort_key;
    3: blob value;
    4: i32 set_expire_ts_seconds;
}

struct check_and_mutate_request {
    1: blob hash_key;
    2: blob check_sort_key;
    3: i32 check_type;
    4: blob check_operand;
    5: list<mutate> mutate_list;
    6: bool return_check_value;
}

struct full_key { 1: blob hash_key; 2: blob sort_key; }
struct full_data { 1: blob hash_key; 2: blob sort_key; 3: blob value; }
struct batch_get_request { 1: list<full_key> keys; }
struct batch_get_response {
    1: i32 error;
    2: list<full_data> data;    // the keys found, in the order asked
    3: i32 app_id;
    4: i32 partition_index;
    6: string server;
}

struct get_scanner_request {
    1: blob start_key;          // rocksdb-style keys, across hash keys
    2: blob stop_key;
    3: bool start_inclusive;
    4: bool stop_inclusive;
    5: i32 batch_size;          // <= 0 or over 1000: 1000
    6: bool no_value;
    7: i32 hash_key_filter_type;
    8: blob hash_key_filter_pattern;
    9: i32 sort_key_filter_type;
    10: blob sort_key_filter_pattern;
    // 11.. (validate_partition_hash, return_expire_ts, full_scan, only_return_count): skipped
}

struct scan_request { 1: i64 context_id; }

struct scan_response {
    1: i32 error;               // 1 (not found): no such context
    2: list<key_value> kvs;     // rocksdb-style keys
    3: i64 context_id;          // >= 0: scan again; -1: read to its end; -2: no such context
    4: i32 app_id;
    5: i32 partition_index;
    6: string server;
}

// Every rrdb RPC's arguments are a struct whose field 1 is the request; its result a struct
// whose field 0 is the response. Message names are "RPC_RRDB_RRDB_" + the method in capitals;
// a reply's is the request's + "_ACK".
service rrdb {
    update_response put(1: update_request update);
    update_response multi_put(1: multi_put_request request);
    update_response remove(1: blob key);
    multi_remove_response multi_remove(1: multi_remove_request request);
    read_response get(1: blob key);
    multi_get_response multi_get(1: multi_get_request request);
    count_response sortkey_count(1: blob hash_key);
    ttl_response ttl(1: blob key);
    incr_response incr(1: incr_request request);
    check_and_set_response check_and_set(1: check_and_set_request request);
    check_and_set_response check_and_mutate(1: check_and_mutate_request request);
    batch_get_response batch_get(1: batch_get_request request);
    scan_response get_scanner(1: get_scanner_request request);
    scan_response scan(1: scan_request request);
    oneway void clear_scanner(1: i64 context_id);
}

// The meta query's message name is "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX".
service meta {
    query_cfg_response query_cfg(1: query_cfg_request query);
}

// Ours, not Pegasus's: a primary's replication request to a secondary node of a multi-node
// cluster (multinode/links.py), message name "RPC_PF_NODE_REPLICATE". The key is a serialized
// pegasus_fast.v1.ReplicateRequest (it carries the node token), the response's value a
// serialized ReplicateReply.
service pf_node {
    read_response replicate(1: blob request);
}
