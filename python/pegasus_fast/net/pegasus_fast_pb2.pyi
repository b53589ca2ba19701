from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClusterInfo(_message.Message):
    __slots__ = ("name", "cluster_id", "cluster_id_derived", "uid", "path", "backend", "pegasus_address", "warnings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_DERIVED_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    PEGASUS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    cluster_id: int
    cluster_id_derived: bool
    uid: str
    path: str
    backend: str
    pegasus_address: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., cluster_id: _Optional[int] = ..., cluster_id_derived: _Optional[bool] = ..., uid: _Optional[str] = ..., path: _Optional[str] = ..., backend: _Optional[str] = ..., pegasus_address: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class TableRef(_message.Message):
    __slots__ = ("table", "partitions")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    table: str
    partitions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, table: _Optional[str] = ..., partitions: _Optional[_Iterable[int]] = ...) -> None: ...

class CreateTableRequest(_message.Message):
    __slots__ = ("table", "partition_count", "envs", "replica_count")
    class EnvsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PARTITION_COUNT_FIELD_NUMBER: _ClassVar[int]
    ENVS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_COUNT_FIELD_NUMBER: _ClassVar[int]
    table: str
    partition_count: int
    envs: _containers.ScalarMap[str, str]
    replica_count: int
    def __init__(self, table: _Optional[str] = ..., partition_count: _Optional[int] = ..., envs: _Optional[_Mapping[str, str]] = ..., replica_count: _Optional[int] = ...) -> None: ...

class TableInfo(_message.Message):
    __slots__ = ("app_id", "name", "partition_count", "status", "create_time", "envs", "role")
    class EnvsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARTITION_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ENVS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    app_id: int
    name: str
    partition_count: int
    status: str
    create_time: float
    envs: _containers.ScalarMap[str, str]
    role: TableRole
    def __init__(self, app_id: _Optional[int] = ..., name: _Optional[str] = ..., partition_count: _Optional[int] = ..., status: _Optional[str] = ..., create_time: _Optional[float] = ..., envs: _Optional[_Mapping[str, str]] = ..., role: _Optional[_Union[TableRole, _Mapping]] = ...) -> None: ...

class TableRole(_message.Message):
    __slots__ = ("kind", "source_of", "follows", "writable", "moved_to")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SOURCE_OF_FIELD_NUMBER: _ClassVar[int]
    FOLLOWS_FIELD_NUMBER: _ClassVar[int]
    WRITABLE_FIELD_NUMBER: _ClassVar[int]
    MOVED_TO_FIELD_NUMBER: _ClassVar[int]
    kind: str
    source_of: _containers.RepeatedScalarFieldContainer[int]
    follows: str
    writable: bool
    moved_to: str
    def __init__(self, kind: _Optional[str] = ..., source_of: _Optional[_Iterable[int]] = ..., follows: _Optional[str] = ..., writable: _Optional[bool] = ..., moved_to: _Optional[str] = ...) -> None: ...

class SetTableEnvsRequest(_message.Message):
    __slots__ = ("table", "envs", "delete")
    class EnvsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TABLE_FIELD_NUMBER: _ClassVar[int]
    ENVS_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    table: str
    envs: _containers.ScalarMap[str, str]
    delete: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, table: _Optional[str] = ..., envs: _Optional[_Mapping[str, str]] = ..., delete: _Optional[_Iterable[str]] = ...) -> None: ...

class SwitchoverRequest(_message.Message):
    __slots__ = ("dupid", "timeout_seconds", "reverse_remote", "reverse_token")
    DUPID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REVERSE_REMOTE_FIELD_NUMBER: _ClassVar[int]
    REVERSE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dupid: int
    timeout_seconds: float
    reverse_remote: str
    reverse_token: str
    def __init__(self, dupid: _Optional[int] = ..., timeout_seconds: _Optional[float] = ..., reverse_remote: _Optional[str] = ..., reverse_token: _Optional[str] = ...) -> None: ...

class SwitchoverReply(_message.Message):
    __slots__ = ("table", "old_dupid", "new_dupid", "new_primary", "rpo_mutations", "write_unavailable_ms", "catch_up_ms", "fenced_decrees")
    class FencedDecreesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    TABLE_FIELD_NUMBER: _ClassVar[int]
    OLD_DUPID_FIELD_NUMBER: _ClassVar[int]
    NEW_DUPID_FIELD_NUMBER: _ClassVar[int]
    NEW_PRIMARY_FIELD_NUMBER: _ClassVar[int]
    RPO_MUTATIONS_FIELD_NUMBER: _ClassVar[int]
    WRITE_UNAVAILABLE_MS_FIELD_NUMBER: _ClassVar[int]
    CATCH_UP_MS_FIELD_NUMBER: _ClassVar[int]
    FENCED_DECREES_FIELD_NUMBER: _ClassVar[int]
    table: str
    old_dupid: int
    new_dupid: int
    new_primary: str
    rpo_mutations: int
    write_unavailable_ms: float
    catch_up_ms: float
    fenced_decrees: _containers.ScalarMap[int, int]
    def __init__(self, table: _Optional[str] = ..., old_dupid: _Optional[int] = ..., new_dupid: _Optional[int] = ..., new_primary: _Optional[str] = ..., rpo_mutations: _Optional[int] = ..., write_unavailable_ms: _Optional[float] = ..., catch_up_ms: _Optional[float] = ..., fenced_decrees: _Optional[_Mapping[int, int]] = ...) -> None: ...

class TableList(_message.Message):
    __slots__ = ("tables",)
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedCompositeFieldContainer[TableInfo]
    def __init__(self, tables: _Optional[_Iterable[_Union[TableInfo, _Mapping]]] = ...) -> None: ...

class SetRequest(_message.Message):
    __slots__ = ("table", "hash_key", "sort_key", "value", "ttl_seconds")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    table: str
    hash_key: bytes
    sort_key: bytes
    value: bytes
    ttl_seconds: int
    def __init__(self, table: _Optional[str] = ..., hash_key: _Optional[bytes] = ..., sort_key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class KeyRequest(_message.Message):
    __slots__ = ("table", "hash_key", "sort_key")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    table: str
    hash_key: bytes
    sort_key: bytes
    def __init__(self, table: _Optional[str] = ..., hash_key: _Optional[bytes] = ..., sort_key: _Optional[bytes] = ...) -> None: ...

class WriteReply(_message.Message):
    __slots__ = ("decree",)
    DECREE_FIELD_NUMBER: _ClassVar[int]
    decree: int
    def __init__(self, decree: _Optional[int] = ...) -> None: ...

class GetReply(_message.Message):
    __slots__ = ("found", "value")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value: bytes
    def __init__(self, found: _Optional[bool] = ..., value: _Optional[bytes] = ...) -> None: ...

class SortKeyValue(_message.Message):
    __slots__ = ("sort_key", "value")
    SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    sort_key: bytes
    value: bytes
    def __init__(self, sort_key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class MultiSetRequest(_message.Message):
    __slots__ = ("table", "hash_key", "kvs", "ttl_seconds")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    KVS_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    table: str
    hash_key: bytes
    kvs: _containers.RepeatedCompositeFieldContainer[SortKeyValue]
    ttl_seconds: int
    def __init__(self, table: _Optional[str] = ..., hash_key: _Optional[bytes] = ..., kvs: _Optional[_Iterable[_Union[SortKeyValue, _Mapping]]] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class MultiGetRequest(_message.Message):
    __slots__ = ("table", "hash_key", "all", "sort_keys")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    SORT_KEYS_FIELD_NUMBER: _ClassVar[int]
    table: str
    hash_key: bytes
    all: bool
    sort_keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, table: _Optional[str] = ..., hash_key: _Optional[bytes] = ..., all: _Optional[bool] = ..., sort_keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class MultiGetReply(_message.Message):
    __slots__ = ("kvs",)
    KVS_FIELD_NUMBER: _ClassVar[int]
    kvs: _containers.RepeatedCompositeFieldContainer[SortKeyValue]
    def __init__(self, kvs: _Optional[_Iterable[_Union[SortKeyValue, _Mapping]]] = ...) -> None: ...

class MultiDeleteRequest(_message.Message):
    __slots__ = ("table", "hash_key", "sort_keys")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    SORT_KEYS_FIELD_NUMBER: _ClassVar[int]
    table: str
    hash_key: bytes
    sort_keys: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, table: _Optional[str] = ..., hash_key: _Optional[bytes] = ..., sort_keys: _Optional[_Iterable[bytes]] = ...) -> None: ...

class CountReply(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class TtlReply(_message.Message):
    __slots__ = ("found", "ttl_seconds")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    found: bool
    ttl_seconds: int
    def __init__(self, found: _Optional[bool] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class KeyFilter(_message.Message):
    __slots__ = ("type", "pattern")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    type: int
    pattern: bytes
    def __init__(self, type: _Optional[int] = ..., pattern: _Optional[bytes] = ...) -> None: ...

class MultiGetRangeRequest(_message.Message):
    __slots__ = ("table", "hash_key", "by_keys", "sort_keys", "start_sort_key", "stop_sort_key", "start_inclusive", "stop_inclusive", "sort_key_filter", "max_kv_count", "max_kv_size", "no_value", "reverse")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    BY_KEYS_FIELD_NUMBER: _ClassVar[int]
    SORT_KEYS_FIELD_NUMBER: _ClassVar[int]
    START_SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    STOP_SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    START_INCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    STOP_INCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    SORT_KEY_FILTER_FIELD_NUMBER: _ClassVar[int]
    MAX_KV_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_KV_SIZE_FIELD_NUMBER: _ClassVar[int]
    NO_VALUE_FIELD_NUMBER: _ClassVar[int]
    REVERSE_FIELD_NUMBER: _ClassVar[int]
    table: str
    hash_key: bytes
    by_keys: bool
    sort_keys: _containers.RepeatedScalarFieldContainer[bytes]
    start_sort_key: bytes
    stop_sort_key: bytes
    start_inclusive: bool
    stop_inclusive: bool
    sort_key_filter: KeyFilter
    max_kv_count: int
    max_kv_size: int
    no_value: bool
    reverse: bool
    def __init__(self, table: _Optional[str] = ..., hash_key: _Optional[bytes] = ..., by_keys: _Optional[bool] = ..., sort_keys: _Optional[_Iterable[bytes]] = ..., start_sort_key: _Optional[bytes] = ..., stop_sort_key: _Optional[bytes] = ..., start_inclusive: _Optional[bool] = ..., stop_inclusive: _Optional[bool] = ..., sort_key_filter: _Optional[_Union[KeyFilter, _Mapping]] = ..., max_kv_count: _Optional[int] = ..., max_kv_size: _Optional[int] = ..., no_value: _Optional[bool] = ..., reverse: _Optional[bool] = ...) -> None: ...

class MultiGetRangeReply(_message.Message):
    __slots__ = ("kvs", "complete")
    KVS_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    kvs: _containers.RepeatedCompositeFieldContainer[SortKeyValue]
    complete: bool
    def __init__(self, kvs: _Optional[_Iterable[_Union[SortKeyValue, _Mapping]]] = ..., complete: _Optional[bool] = ...) -> None: ...

class HashSortKey(_message.Message):
    __slots__ = ("hash_key", "sort_key")
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    hash_key: bytes
    sort_key: bytes
    def __init__(self, hash_key: _Optional[bytes] = ..., sort_key: _Optional[bytes] = ...) -> None: ...

class BatchGetRequest(_message.Message):
    __slots__ = ("table", "keys")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    table: str
    keys: _containers.RepeatedCompositeFieldContainer[HashSortKey]
    def __init__(self, table: _Optional[str] = ..., keys: _Optional[_Iterable[_Union[HashSortKey, _Mapping]]] = ...) -> None: ...

class BatchGetReply(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[GetReply]
    def __init__(self, values: _Optional[_Iterable[_Union[GetReply, _Mapping]]] = ...) -> None: ...

class ScanRangeRequest(_message.Message):
    __slots__ = ("table", "hash_key", "start_sort_key", "stop_sort_key", "start_inclusive", "stop_inclusive", "sort_key_filter", "batch_size", "no_value")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    START_SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    STOP_SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    START_INCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    STOP_INCLUSIVE_FIELD_NUMBER: _ClassVar[int]
    SORT_KEY_FILTER_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    NO_VALUE_FIELD_NUMBER: _ClassVar[int]
    table: str
    hash_key: bytes
    start_sort_key: bytes
    stop_sort_key: bytes
    start_inclusive: bool
    stop_inclusive: bool
    sort_key_filter: KeyFilter
    batch_size: int
    no_value: bool
    def __init__(self, table: _Optional[str] = ..., hash_key: _Optional[bytes] = ..., start_sort_key: _Optional[bytes] = ..., stop_sort_key: _Optional[bytes] = ..., start_inclusive: _Optional[bool] = ..., stop_inclusive: _Optional[bool] = ..., sort_key_filter: _Optional[_Union[KeyFilter, _Mapping]] = ..., batch_size: _Optional[int] = ..., no_value: _Optional[bool] = ...) -> None: ...

class ScanFilteredRequest(_message.Message):
    __slots__ = ("table", "partitions", "hash_key_filter", "sort_key_filter", "batch_size", "no_value")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    HASH_KEY_FILTER_FIELD_NUMBER: _ClassVar[int]
    SORT_KEY_FILTER_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    NO_VALUE_FIELD_NUMBER: _ClassVar[int]
    table: str
    partitions: _containers.RepeatedScalarFieldContainer[int]
    hash_key_filter: KeyFilter
    sort_key_filter: KeyFilter
    batch_size: int
    no_value: bool
    def __init__(self, table: _Optional[str] = ..., partitions: _Optional[_Iterable[int]] = ..., hash_key_filter: _Optional[_Union[KeyFilter, _Mapping]] = ..., sort_key_filter: _Optional[_Union[KeyFilter, _Mapping]] = ..., batch_size: _Optional[int] = ..., no_value: _Optional[bool] = ...) -> None: ...

class IncrRequest(_message.Message):
    __slots__ = ("table", "hash_key", "sort_key", "increment", "ttl_seconds")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    INCREMENT_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    table: str
    hash_key: bytes
    sort_key: bytes
    increment: int
    ttl_seconds: int
    def __init__(self, table: _Optional[str] = ..., hash_key: _Optional[bytes] = ..., sort_key: _Optional[bytes] = ..., increment: _Optional[int] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class IncrReply(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: int
    def __init__(self, value: _Optional[int] = ...) -> None: ...

class CheckAndSetRequest(_message.Message):
    __slots__ = ("table", "hash_key", "check_sort_key", "check_type", "check_operand", "set_sort_key", "set_value", "ttl_seconds", "return_check_value")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    CHECK_SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    CHECK_TYPE_FIELD_NUMBER: _ClassVar[int]
    CHECK_OPERAND_FIELD_NUMBER: _ClassVar[int]
    SET_SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    SET_VALUE_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RETURN_CHECK_VALUE_FIELD_NUMBER: _ClassVar[int]
    table: str
    hash_key: bytes
    check_sort_key: bytes
    check_type: int
    check_operand: bytes
    set_sort_key: bytes
    set_value: bytes
    ttl_seconds: int
    return_check_value: bool
    def __init__(self, table: _Optional[str] = ..., hash_key: _Optional[bytes] = ..., check_sort_key: _Optional[bytes] = ..., check_type: _Optional[int] = ..., check_operand: _Optional[bytes] = ..., set_sort_key: _Optional[bytes] = ..., set_value: _Optional[bytes] = ..., ttl_seconds: _Optional[int] = ..., return_check_value: _Optional[bool] = ...) -> None: ...

class Mutation(_message.Message):
    __slots__ = ("operation", "sort_key", "value", "ttl_seconds")
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    operation: int
    sort_key: bytes
    value: bytes
    ttl_seconds: int
    def __init__(self, operation: _Optional[int] = ..., sort_key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class CheckAndMutateRequest(_message.Message):
    __slots__ = ("table", "hash_key", "check_sort_key", "check_type", "check_operand", "mutations", "return_check_value")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    CHECK_SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    CHECK_TYPE_FIELD_NUMBER: _ClassVar[int]
    CHECK_OPERAND_FIELD_NUMBER: _ClassVar[int]
    MUTATIONS_FIELD_NUMBER: _ClassVar[int]
    RETURN_CHECK_VALUE_FIELD_NUMBER: _ClassVar[int]
    table: str
    hash_key: bytes
    check_sort_key: bytes
    check_type: int
    check_operand: bytes
    mutations: _containers.RepeatedCompositeFieldContainer[Mutation]
    return_check_value: bool
    def __init__(self, table: _Optional[str] = ..., hash_key: _Optional[bytes] = ..., check_sort_key: _Optional[bytes] = ..., check_type: _Optional[int] = ..., check_operand: _Optional[bytes] = ..., mutations: _Optional[_Iterable[_Union[Mutation, _Mapping]]] = ..., return_check_value: _Optional[bool] = ...) -> None: ...

class CheckReply(_message.Message):
    __slots__ = ("succeed", "check_value_returned", "check_value_exist", "check_value")
    SUCCEED_FIELD_NUMBER: _ClassVar[int]
    CHECK_VALUE_RETURNED_FIELD_NUMBER: _ClassVar[int]
    CHECK_VALUE_EXIST_FIELD_NUMBER: _ClassVar[int]
    CHECK_VALUE_FIELD_NUMBER: _ClassVar[int]
    succeed: bool
    check_value_returned: bool
    check_value_exist: bool
    check_value: bytes
    def __init__(self, succeed: _Optional[bool] = ..., check_value_returned: _Optional[bool] = ..., check_value_exist: _Optional[bool] = ..., check_value: _Optional[bytes] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("hash_key", "sort_key", "value")
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    hash_key: bytes
    sort_key: bytes
    value: bytes
    def __init__(self, hash_key: _Optional[bytes] = ..., sort_key: _Optional[bytes] = ..., value: _Optional[bytes] = ...) -> None: ...

class RecordBatch(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[Record]
    def __init__(self, records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ...) -> None: ...

class PartitionStats(_message.Message):
    __slots__ = ("pidx", "state", "last_committed_decree", "last_applied_decree", "last_flushed_decree", "last_durable_decree", "wal_bytes", "data_bytes")
    PIDX_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_COMMITTED_DECREE_FIELD_NUMBER: _ClassVar[int]
    LAST_APPLIED_DECREE_FIELD_NUMBER: _ClassVar[int]
    LAST_FLUSHED_DECREE_FIELD_NUMBER: _ClassVar[int]
    LAST_DURABLE_DECREE_FIELD_NUMBER: _ClassVar[int]
    WAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_BYTES_FIELD_NUMBER: _ClassVar[int]
    pidx: int
    state: str
    last_committed_decree: int
    last_applied_decree: int
    last_flushed_decree: int
    last_durable_decree: int
    wal_bytes: int
    data_bytes: int
    def __init__(self, pidx: _Optional[int] = ..., state: _Optional[str] = ..., last_committed_decree: _Optional[int] = ..., last_applied_decree: _Optional[int] = ..., last_flushed_decree: _Optional[int] = ..., last_durable_decree: _Optional[int] = ..., wal_bytes: _Optional[int] = ..., data_bytes: _Optional[int] = ...) -> None: ...

class PartitionStatsReply(_message.Message):
    __slots__ = ("partitions",)
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionStats]
    def __init__(self, partitions: _Optional[_Iterable[_Union[PartitionStats, _Mapping]]] = ...) -> None: ...

class PartitionState(_message.Message):
    __slots__ = ("pidx", "state")
    PIDX_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    pidx: int
    state: str
    def __init__(self, pidx: _Optional[int] = ..., state: _Optional[str] = ...) -> None: ...

class HealthReply(_message.Message):
    __slots__ = ("fully_healthy", "unhealthy", "write_unhealthy", "read_unhealthy", "partitions")
    FULLY_HEALTHY_FIELD_NUMBER: _ClassVar[int]
    UNHEALTHY_FIELD_NUMBER: _ClassVar[int]
    WRITE_UNHEALTHY_FIELD_NUMBER: _ClassVar[int]
    READ_UNHEALTHY_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    fully_healthy: int
    unhealthy: int
    write_unhealthy: int
    read_unhealthy: int
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionState]
    def __init__(self, fully_healthy: _Optional[int] = ..., unhealthy: _Optional[int] = ..., write_unhealthy: _Optional[int] = ..., read_unhealthy: _Optional[int] = ..., partitions: _Optional[_Iterable[_Union[PartitionState, _Mapping]]] = ...) -> None: ...

class CheckpointInfo(_message.Message):
    __slots__ = ("pidx", "decree", "path", "duration_ms", "size_bytes")
    PIDX_FIELD_NUMBER: _ClassVar[int]
    DECREE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    pidx: int
    decree: int
    path: str
    duration_ms: float
    size_bytes: int
    def __init__(self, pidx: _Optional[int] = ..., decree: _Optional[int] = ..., path: _Optional[str] = ..., duration_ms: _Optional[float] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class CheckpointReply(_message.Message):
    __slots__ = ("checkpoints",)
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[CheckpointInfo]
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[CheckpointInfo, _Mapping]]] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ("table", "name")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    table: str
    name: str
    def __init__(self, table: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class BackupPartition(_message.Message):
    __slots__ = ("pidx", "decree", "files", "bytes")
    PIDX_FIELD_NUMBER: _ClassVar[int]
    DECREE_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    pidx: int
    decree: int
    files: int
    bytes: int
    def __init__(self, pidx: _Optional[int] = ..., decree: _Optional[int] = ..., files: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class BackupReply(_message.Message):
    __slots__ = ("table", "partition_count", "partitions")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PARTITION_COUNT_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    table: str
    partition_count: int
    partitions: _containers.RepeatedCompositeFieldContainer[BackupPartition]
    def __init__(self, table: _Optional[str] = ..., partition_count: _Optional[int] = ..., partitions: _Optional[_Iterable[_Union[BackupPartition, _Mapping]]] = ...) -> None: ...

class RestoreRequest(_message.Message):
    __slots__ = ("name", "table")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    table: str
    def __init__(self, name: _Optional[str] = ..., table: _Optional[str] = ...) -> None: ...

class AddDuplicationRequest(_message.Message):
    __slots__ = ("table", "remote", "remote_table", "with_checkpoint", "fail_mode", "remote_token", "accept_gap")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    REMOTE_FIELD_NUMBER: _ClassVar[int]
    REMOTE_TABLE_FIELD_NUMBER: _ClassVar[int]
    WITH_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    FAIL_MODE_FIELD_NUMBER: _ClassVar[int]
    REMOTE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_GAP_FIELD_NUMBER: _ClassVar[int]
    table: str
    remote: str
    remote_table: str
    with_checkpoint: bool
    fail_mode: str
    remote_token: str
    accept_gap: bool
    def __init__(self, table: _Optional[str] = ..., remote: _Optional[str] = ..., remote_table: _Optional[str] = ..., with_checkpoint: _Optional[bool] = ..., fail_mode: _Optional[str] = ..., remote_token: _Optional[str] = ..., accept_gap: _Optional[bool] = ...) -> None: ...

class UpdateDuplicationRequest(_message.Message):
    __slots__ = ("dupid", "remote_token")
    DUPID_FIELD_NUMBER: _ClassVar[int]
    REMOTE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dupid: int
    remote_token: str
    def __init__(self, dupid: _Optional[int] = ..., remote_token: _Optional[str] = ...) -> None: ...

class DupRef(_message.Message):
    __slots__ = ("dupid",)
    DUPID_FIELD_NUMBER: _ClassVar[int]
    dupid: int
    def __init__(self, dupid: _Optional[int] = ...) -> None: ...

class ListDuplicationsRequest(_message.Message):
    __slots__ = ("table",)
    TABLE_FIELD_NUMBER: _ClassVar[int]
    table: str
    def __init__(self, table: _Optional[str] = ...) -> None: ...

class DuplicationInfo(_message.Message):
    __slots__ = ("dupid", "table", "remote", "remote_table", "status", "fail_mode", "with_checkpoint", "create_time", "error", "stuck_reason", "error_detail")
    DUPID_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    REMOTE_FIELD_NUMBER: _ClassVar[int]
    REMOTE_TABLE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FAIL_MODE_FIELD_NUMBER: _ClassVar[int]
    WITH_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STUCK_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_DETAIL_FIELD_NUMBER: _ClassVar[int]
    dupid: int
    table: str
    remote: str
    remote_table: str
    status: str
    fail_mode: str
    with_checkpoint: bool
    create_time: float
    error: str
    stuck_reason: str
    error_detail: bytes
    def __init__(self, dupid: _Optional[int] = ..., table: _Optional[str] = ..., remote: _Optional[str] = ..., remote_table: _Optional[str] = ..., status: _Optional[str] = ..., fail_mode: _Optional[str] = ..., with_checkpoint: _Optional[bool] = ..., create_time: _Optional[float] = ..., error: _Optional[str] = ..., stuck_reason: _Optional[str] = ..., error_detail: _Optional[bytes] = ...) -> None: ...

class DuplicationList(_message.Message):
    __slots__ = ("duplications",)
    DUPLICATIONS_FIELD_NUMBER: _ClassVar[int]
    duplications: _containers.RepeatedCompositeFieldContainer[DuplicationInfo]
    def __init__(self, duplications: _Optional[_Iterable[_Union[DuplicationInfo, _Mapping]]] = ...) -> None: ...

class WaitRequest(_message.Message):
    __slots__ = ("dupid", "status", "timeout_seconds")
    DUPID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    dupid: int
    status: str
    timeout_seconds: float
    def __init__(self, dupid: _Optional[int] = ..., status: _Optional[str] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class PartitionProgress(_message.Message):
    __slots__ = ("pidx", "checkpoint_state", "checkpoint_kind", "checkpoint_decree", "confirmed_decree", "last_committed_decree", "pending_mutations", "time_lag_ms", "reason", "checkpoint_duration_ms", "copied_bytes", "copy_total_bytes", "copy_seconds", "stuck_reason")
    PIDX_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_STATE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_KIND_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_DECREE_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_DECREE_FIELD_NUMBER: _ClassVar[int]
    LAST_COMMITTED_DECREE_FIELD_NUMBER: _ClassVar[int]
    PENDING_MUTATIONS_FIELD_NUMBER: _ClassVar[int]
    TIME_LAG_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    COPIED_BYTES_FIELD_NUMBER: _ClassVar[int]
    COPY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    COPY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STUCK_REASON_FIELD_NUMBER: _ClassVar[int]
    pidx: int
    checkpoint_state: str
    checkpoint_kind: str
    checkpoint_decree: int
    confirmed_decree: int
    last_committed_decree: int
    pending_mutations: int
    time_lag_ms: float
    reason: str
    checkpoint_duration_ms: float
    copied_bytes: int
    copy_total_bytes: int
    copy_seconds: float
    stuck_reason: str
    def __init__(self, pidx: _Optional[int] = ..., checkpoint_state: _Optional[str] = ..., checkpoint_kind: _Optional[str] = ..., checkpoint_decree: _Optional[int] = ..., confirmed_decree: _Optional[int] = ..., last_committed_decree: _Optional[int] = ..., pending_mutations: _Optional[int] = ..., time_lag_ms: _Optional[float] = ..., reason: _Optional[str] = ..., checkpoint_duration_ms: _Optional[float] = ..., copied_bytes: _Optional[int] = ..., copy_total_bytes: _Optional[int] = ..., copy_seconds: _Optional[float] = ..., stuck_reason: _Optional[str] = ...) -> None: ...

class ProgressReply(_message.Message):
    __slots__ = ("partitions",)
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionProgress]
    def __init__(self, partitions: _Optional[_Iterable[_Union[PartitionProgress, _Mapping]]] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("dupid", "timeout_seconds", "pidxs")
    DUPID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PIDXS_FIELD_NUMBER: _ClassVar[int]
    dupid: int
    timeout_seconds: float
    pidxs: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dupid: _Optional[int] = ..., timeout_seconds: _Optional[float] = ..., pidxs: _Optional[_Iterable[int]] = ...) -> None: ...

class RecordState(_message.Message):
    __slots__ = ("value", "expire_ts")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TS_FIELD_NUMBER: _ClassVar[int]
    value: bytes
    expire_ts: int
    def __init__(self, value: _Optional[bytes] = ..., expire_ts: _Optional[int] = ...) -> None: ...

class VerifyDifference(_message.Message):
    __slots__ = ("hash_key", "sort_key", "source", "follower")
    HASH_KEY_FIELD_NUMBER: _ClassVar[int]
    SORT_KEY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FOLLOWER_FIELD_NUMBER: _ClassVar[int]
    hash_key: bytes
    sort_key: bytes
    source: RecordState
    follower: RecordState
    def __init__(self, hash_key: _Optional[bytes] = ..., sort_key: _Optional[bytes] = ..., source: _Optional[_Union[RecordState, _Mapping]] = ..., follower: _Optional[_Union[RecordState, _Mapping]] = ...) -> None: ...

class PartitionVerify(_message.Message):
    __slots__ = ("pidx", "equal", "decree", "records", "follower_records", "first_difference", "quiet", "reason")
    PIDX_FIELD_NUMBER: _ClassVar[int]
    EQUAL_FIELD_NUMBER: _ClassVar[int]
    DECREE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    FOLLOWER_RECORDS_FIELD_NUMBER: _ClassVar[int]
    FIRST_DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    QUIET_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    pidx: int
    equal: bool
    decree: int
    records: int
    follower_records: int
    first_difference: VerifyDifference
    quiet: bool
    reason: str
    def __init__(self, pidx: _Optional[int] = ..., equal: _Optional[bool] = ..., decree: _Optional[int] = ..., records: _Optional[int] = ..., follower_records: _Optional[int] = ..., first_difference: _Optional[_Union[VerifyDifference, _Mapping]] = ..., quiet: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class VerifyReply(_message.Message):
    __slots__ = ("dupid", "table", "remote_table", "equal", "quiet", "now", "seconds", "partitions")
    DUPID_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    REMOTE_TABLE_FIELD_NUMBER: _ClassVar[int]
    EQUAL_FIELD_NUMBER: _ClassVar[int]
    QUIET_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    dupid: int
    table: str
    remote_table: str
    equal: bool
    quiet: bool
    now: int
    seconds: float
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionVerify]
    def __init__(self, dupid: _Optional[int] = ..., table: _Optional[str] = ..., remote_table: _Optional[str] = ..., equal: _Optional[bool] = ..., quiet: _Optional[bool] = ..., now: _Optional[int] = ..., seconds: _Optional[float] = ..., partitions: _Optional[_Iterable[_Union[PartitionVerify, _Mapping]]] = ...) -> None: ...

class IdentityReply(_message.Message):
    __slots__ = ("cluster_id", "cluster_uid", "max_message_bytes", "dup_apply_address")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_UID_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DUP_APPLY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    cluster_uid: str
    max_message_bytes: int
    dup_apply_address: str
    def __init__(self, cluster_id: _Optional[int] = ..., cluster_uid: _Optional[str] = ..., max_message_bytes: _Optional[int] = ..., dup_apply_address: _Optional[str] = ...) -> None: ...

class SourceId(_message.Message):
    __slots__ = ("cluster", "cluster_uid", "table", "dupid")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_UID_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    DUPID_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    cluster_uid: str
    table: str
    dupid: int
    def __init__(self, cluster: _Optional[str] = ..., cluster_uid: _Optional[str] = ..., table: _Optional[str] = ..., dupid: _Optional[int] = ...) -> None: ...

class EnsureTableRequest(_message.Message):
    __slots__ = ("table", "partition_count", "source", "with_checkpoint")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PARTITION_COUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    WITH_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    table: str
    partition_count: int
    source: SourceId
    with_checkpoint: bool
    def __init__(self, table: _Optional[str] = ..., partition_count: _Optional[int] = ..., source: _Optional[_Union[SourceId, _Mapping]] = ..., with_checkpoint: _Optional[bool] = ...) -> None: ...

class PartitionRef(_message.Message):
    __slots__ = ("table", "pidx")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PIDX_FIELD_NUMBER: _ClassVar[int]
    table: str
    pidx: int
    def __init__(self, table: _Optional[str] = ..., pidx: _Optional[int] = ...) -> None: ...

class PartitionStatusRequest(_message.Message):
    __slots__ = ("table", "count", "source")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    table: str
    count: int
    source: SourceId
    def __init__(self, table: _Optional[str] = ..., count: _Optional[int] = ..., source: _Optional[_Union[SourceId, _Mapping]] = ...) -> None: ...

class PartitionStatus(_message.Message):
    __slots__ = ("learned", "source_decree")
    LEARNED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DECREE_FIELD_NUMBER: _ClassVar[int]
    learned: bool
    source_decree: int
    def __init__(self, learned: _Optional[bool] = ..., source_decree: _Optional[int] = ...) -> None: ...

class PartitionStatusReply(_message.Message):
    __slots__ = ("partitions",)
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionStatus]
    def __init__(self, partitions: _Optional[_Iterable[_Union[PartitionStatus, _Mapping]]] = ...) -> None: ...

class LearnEmptyRequest(_message.Message):
    __slots__ = ("table", "decrees", "source")
    class DecreesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    TABLE_FIELD_NUMBER: _ClassVar[int]
    DECREES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    table: str
    decrees: _containers.ScalarMap[int, int]
    source: SourceId
    def __init__(self, table: _Optional[str] = ..., decrees: _Optional[_Mapping[int, int]] = ..., source: _Optional[_Union[SourceId, _Mapping]] = ...) -> None: ...

class LearnSnapshotRequest(_message.Message):
    __slots__ = ("table", "pidx", "decree", "block", "source")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PIDX_FIELD_NUMBER: _ClassVar[int]
    DECREE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    table: str
    pidx: int
    decree: int
    block: bytes
    source: SourceId
    def __init__(self, table: _Optional[str] = ..., pidx: _Optional[int] = ..., decree: _Optional[int] = ..., block: _Optional[bytes] = ..., source: _Optional[_Union[SourceId, _Mapping]] = ...) -> None: ...

class ManifestEntry(_message.Message):
    __slots__ = ("name", "size", "blake3")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    BLAKE3_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    blake3: str
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., blake3: _Optional[str] = ...) -> None: ...

class CheckpointRequest(_message.Message):
    __slots__ = ("table", "pidx", "decree", "manifest", "source")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PIDX_FIELD_NUMBER: _ClassVar[int]
    DECREE_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    table: str
    pidx: int
    decree: int
    manifest: _containers.RepeatedCompositeFieldContainer[ManifestEntry]
    source: SourceId
    def __init__(self, table: _Optional[str] = ..., pidx: _Optional[int] = ..., decree: _Optional[int] = ..., manifest: _Optional[_Iterable[_Union[ManifestEntry, _Mapping]]] = ..., source: _Optional[_Union[SourceId, _Mapping]] = ...) -> None: ...

class CheckpointOffsetsReply(_message.Message):
    __slots__ = ("offsets",)
    class OffsetsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    offsets: _containers.ScalarMap[str, int]
    def __init__(self, offsets: _Optional[_Mapping[str, int]] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("name", "offset", "data", "crc32c")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CRC32C_FIELD_NUMBER: _ClassVar[int]
    name: str
    offset: int
    data: bytes
    crc32c: int
    def __init__(self, name: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., crc32c: _Optional[int] = ...) -> None: ...

class CheckpointPiece(_message.Message):
    __slots__ = ("header", "chunk", "end")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    header: CheckpointRequest
    chunk: Chunk
    end: Empty
    def __init__(self, header: _Optional[_Union[CheckpointRequest, _Mapping]] = ..., chunk: _Optional[_Union[Chunk, _Mapping]] = ..., end: _Optional[_Union[Empty, _Mapping]] = ...) -> None: ...

class MarkLearnedRequest(_message.Message):
    __slots__ = ("table", "pidxs", "source")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PIDXS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    table: str
    pidxs: _containers.RepeatedScalarFieldContainer[int]
    source: SourceId
    def __init__(self, table: _Optional[str] = ..., pidxs: _Optional[_Iterable[int]] = ..., source: _Optional[_Union[SourceId, _Mapping]] = ...) -> None: ...

class ApplyRequest(_message.Message):
    __slots__ = ("table", "pidx", "blocks", "skipped_through", "source", "token")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PIDX_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_THROUGH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    table: str
    pidx: int
    blocks: bytes
    skipped_through: int
    source: SourceId
    token: str
    def __init__(self, table: _Optional[str] = ..., pidx: _Optional[int] = ..., blocks: _Optional[bytes] = ..., skipped_through: _Optional[int] = ..., source: _Optional[_Union[SourceId, _Mapping]] = ..., token: _Optional[str] = ...) -> None: ...

class ApplyReply(_message.Message):
    __slots__ = ("source_decree",)
    SOURCE_DECREE_FIELD_NUMBER: _ClassVar[int]
    source_decree: int
    def __init__(self, source_decree: _Optional[int] = ...) -> None: ...

class AdvanceRequest(_message.Message):
    __slots__ = ("table", "pidx", "source_decree", "source")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PIDX_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DECREE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    table: str
    pidx: int
    source_decree: int
    source: SourceId
    def __init__(self, table: _Optional[str] = ..., pidx: _Optional[int] = ..., source_decree: _Optional[int] = ..., source: _Optional[_Union[SourceId, _Mapping]] = ...) -> None: ...

class VerifyViewRequest(_message.Message):
    __slots__ = ("table", "pidx", "decree", "timeout_seconds", "source")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PIDX_FIELD_NUMBER: _ClassVar[int]
    DECREE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    table: str
    pidx: int
    decree: int
    timeout_seconds: float
    source: SourceId
    def __init__(self, table: _Optional[str] = ..., pidx: _Optional[int] = ..., decree: _Optional[int] = ..., timeout_seconds: _Optional[float] = ..., source: _Optional[_Union[SourceId, _Mapping]] = ...) -> None: ...

class VerifyViewReply(_message.Message):
    __slots__ = ("view", "committed", "source_held")
    VIEW_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_HELD_FIELD_NUMBER: _ClassVar[int]
    view: str
    committed: int
    source_held: int
    def __init__(self, view: _Optional[str] = ..., committed: _Optional[int] = ..., source_held: _Optional[int] = ...) -> None: ...

class VerifyViewRef(_message.Message):
    __slots__ = ("view",)
    VIEW_FIELD_NUMBER: _ClassVar[int]
    view: str
    def __init__(self, view: _Optional[str] = ...) -> None: ...

class VerifyRangeRequest(_message.Message):
    __slots__ = ("view", "now", "start", "end", "limit")
    VIEW_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    view: str
    now: int
    start: bytes
    end: bytes
    limit: int
    def __init__(self, view: _Optional[str] = ..., now: _Optional[int] = ..., start: _Optional[bytes] = ..., end: _Optional[bytes] = ..., limit: _Optional[int] = ...) -> None: ...

class DigestChunk(_message.Message):
    __slots__ = ("last_key", "count", "digest")
    LAST_KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    last_key: bytes
    count: int
    digest: bytes
    def __init__(self, last_key: _Optional[bytes] = ..., count: _Optional[int] = ..., digest: _Optional[bytes] = ...) -> None: ...

class VerifyDigestReply(_message.Message):
    __slots__ = ("chunks",)
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[DigestChunk]
    def __init__(self, chunks: _Optional[_Iterable[_Union[DigestChunk, _Mapping]]] = ...) -> None: ...

class StoredRecord(_message.Message):
    __slots__ = ("key", "expire_ts", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    expire_ts: int
    value: bytes
    def __init__(self, key: _Optional[bytes] = ..., expire_ts: _Optional[int] = ..., value: _Optional[bytes] = ...) -> None: ...

class VerifyRecordsReply(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[StoredRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[StoredRecord, _Mapping]]] = ...) -> None: ...

class MovePartitionRequest(_message.Message):
    __slots__ = ("table", "pidx", "node", "from_node")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PIDX_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    FROM_NODE_FIELD_NUMBER: _ClassVar[int]
    table: str
    pidx: int
    node: str
    from_node: str
    def __init__(self, table: _Optional[str] = ..., pidx: _Optional[int] = ..., node: _Optional[str] = ..., from_node: _Optional[str] = ...) -> None: ...

class BalanceReply(_message.Message):
    __slots__ = ("moves",)
    MOVES_FIELD_NUMBER: _ClassVar[int]
    moves: _containers.RepeatedCompositeFieldContainer[MovePartitionRequest]
    def __init__(self, moves: _Optional[_Iterable[_Union[MovePartitionRequest, _Mapping]]] = ...) -> None: ...

class ReplicaDecreeRequest(_message.Message):
    __slots__ = ("table", "pidx", "ballot")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PIDX_FIELD_NUMBER: _ClassVar[int]
    BALLOT_FIELD_NUMBER: _ClassVar[int]
    table: str
    pidx: int
    ballot: int
    def __init__(self, table: _Optional[str] = ..., pidx: _Optional[int] = ..., ballot: _Optional[int] = ...) -> None: ...

class ReplicaItem(_message.Message):
    __slots__ = ("table", "pidx", "ballot", "blocks", "first")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PIDX_FIELD_NUMBER: _ClassVar[int]
    BALLOT_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    table: str
    pidx: int
    ballot: int
    blocks: bytes
    first: int
    def __init__(self, table: _Optional[str] = ..., pidx: _Optional[int] = ..., ballot: _Optional[int] = ..., blocks: _Optional[bytes] = ..., first: _Optional[int] = ...) -> None: ...

class ReplicateRequest(_message.Message):
    __slots__ = ("primary", "items", "token")
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    primary: str
    items: _containers.RepeatedCompositeFieldContainer[ReplicaItem]
    token: str
    def __init__(self, primary: _Optional[str] = ..., items: _Optional[_Iterable[_Union[ReplicaItem, _Mapping]]] = ..., token: _Optional[str] = ...) -> None: ...

class ReplicaAck(_message.Message):
    __slots__ = ("decree", "status", "ballot")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OK: _ClassVar[ReplicaAck.Status]
        STALE: _ClassVar[ReplicaAck.Status]
        GAP: _ClassVar[ReplicaAck.Status]
        FAILED: _ClassVar[ReplicaAck.Status]
    OK: ReplicaAck.Status
    STALE: ReplicaAck.Status
    GAP: ReplicaAck.Status
    FAILED: ReplicaAck.Status
    DECREE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BALLOT_FIELD_NUMBER: _ClassVar[int]
    decree: int
    status: ReplicaAck.Status
    ballot: int
    def __init__(self, decree: _Optional[int] = ..., status: _Optional[_Union[ReplicaAck.Status, str]] = ..., ballot: _Optional[int] = ...) -> None: ...

class ReplicateReply(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[ReplicaAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[ReplicaAck, _Mapping]]] = ...) -> None: ...

class PullLogRequest(_message.Message):
    __slots__ = ("table", "pidx", "after", "through")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PIDX_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    THROUGH_FIELD_NUMBER: _ClassVar[int]
    table: str
    pidx: int
    after: int
    through: int
    def __init__(self, table: _Optional[str] = ..., pidx: _Optional[int] = ..., after: _Optional[int] = ..., through: _Optional[int] = ...) -> None: ...

class LogBatch(_message.Message):
    __slots__ = ("blocks", "last_decree")
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    LAST_DECREE_FIELD_NUMBER: _ClassVar[int]
    blocks: bytes
    last_decree: int
    def __init__(self, blocks: _Optional[bytes] = ..., last_decree: _Optional[int] = ...) -> None: ...

class LearnPartitionRequest(_message.Message):
    __slots__ = ("table", "pidx", "source_url", "through", "max_bytes_per_sec")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PIDX_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    THROUGH_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    table: str
    pidx: int
    source_url: str
    through: int
    max_bytes_per_sec: int
    def __init__(self, table: _Optional[str] = ..., pidx: _Optional[int] = ..., source_url: _Optional[str] = ..., through: _Optional[int] = ..., max_bytes_per_sec: _Optional[int] = ...) -> None: ...

class MoveReply(_message.Message):
    __slots__ = ("decree",)
    DECREE_FIELD_NUMBER: _ClassVar[int]
    decree: int
    def __init__(self, decree: _Optional[int] = ...) -> None: ...

class TakeOverRequest(_message.Message):
    __slots__ = ("table", "source", "decrees", "back_remote", "back_token")
    class DecreesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    TABLE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DECREES_FIELD_NUMBER: _ClassVar[int]
    BACK_REMOTE_FIELD_NUMBER: _ClassVar[int]
    BACK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    table: str
    source: SourceId
    decrees: _containers.ScalarMap[int, int]
    back_remote: str
    back_token: str
    def __init__(self, table: _Optional[str] = ..., source: _Optional[_Union[SourceId, _Mapping]] = ..., decrees: _Optional[_Mapping[int, int]] = ..., back_remote: _Optional[str] = ..., back_token: _Optional[str] = ...) -> None: ...

class TakeOverReply(_message.Message):
    __slots__ = ("dupid", "applied")
    class AppliedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    DUPID_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    dupid: int
    applied: _containers.ScalarMap[int, int]
    def __init__(self, dupid: _Optional[int] = ..., applied: _Optional[_Mapping[int, int]] = ...) -> None: ...
