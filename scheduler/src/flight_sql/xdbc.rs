//! `GetXdbcTypeInfo`: the SQL types Tributary supports, described for ODBC/JDBC clients.

use arrow_flight::sql::metadata::{XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder};
use arrow_flight::sql::{Nullable, Searchable, XdbcDataType, XdbcDatetimeSubcode};

struct Spec {
    name: &'static str,
    data_type: XdbcDataType,
    column_size: Option<i32>,
    quoted: Option<(&'static str, &'static str)>,
    create_params: Option<&'static [&'static str]>,
    numeric: bool,
    subcode: Option<XdbcDatetimeSubcode>,
}

const TYPES: &[Spec] = &[
    Spec {
        name: "boolean",
        data_type: XdbcDataType::XdbcBit,
        column_size: Some(1),
        quoted: None,
        create_params: None,
        numeric: false,
        subcode: None,
    },
    Spec {
        name: "tinyint",
        data_type: XdbcDataType::XdbcTinyint,
        column_size: Some(3),
        quoted: None,
        create_params: None,
        numeric: true,
        subcode: None,
    },
    Spec {
        name: "bigint",
        data_type: XdbcDataType::XdbcBigint,
        column_size: Some(19),
        quoted: None,
        create_params: None,
        numeric: true,
        subcode: None,
    },
    Spec {
        name: "varbinary",
        data_type: XdbcDataType::XdbcVarbinary,
        column_size: None,
        quoted: Some(("X'", "'")),
        create_params: None,
        numeric: false,
        subcode: None,
    },
    Spec {
        name: "decimal",
        data_type: XdbcDataType::XdbcDecimal,
        column_size: Some(38),
        quoted: None,
        create_params: Some(&["precision", "scale"]),
        numeric: true,
        subcode: None,
    },
    Spec {
        name: "integer",
        data_type: XdbcDataType::XdbcInteger,
        column_size: Some(10),
        quoted: None,
        create_params: None,
        numeric: true,
        subcode: None,
    },
    Spec {
        name: "smallint",
        data_type: XdbcDataType::XdbcSmallint,
        column_size: Some(5),
        quoted: None,
        create_params: None,
        numeric: true,
        subcode: None,
    },
    Spec {
        name: "real",
        data_type: XdbcDataType::XdbcReal,
        column_size: Some(24),
        quoted: None,
        create_params: None,
        numeric: true,
        subcode: None,
    },
    Spec {
        name: "double",
        data_type: XdbcDataType::XdbcDouble,
        column_size: Some(53),
        quoted: None,
        create_params: None,
        numeric: true,
        subcode: None,
    },
    Spec {
        name: "varchar",
        data_type: XdbcDataType::XdbcVarchar,
        column_size: None,
        quoted: Some(("'", "'")),
        create_params: Some(&["length"]),
        numeric: false,
        subcode: None,
    },
    Spec {
        name: "date",
        data_type: XdbcDataType::XdbcDate,
        column_size: Some(10),
        quoted: Some(("DATE '", "'")),
        create_params: None,
        numeric: false,
        subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeYear),
    },
    Spec {
        name: "time",
        data_type: XdbcDataType::XdbcTime,
        column_size: Some(18),
        quoted: Some(("TIME '", "'")),
        create_params: Some(&["precision"]),
        numeric: false,
        subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeTime),
    },
    Spec {
        name: "timestamp",
        data_type: XdbcDataType::XdbcTimestamp,
        column_size: Some(29),
        quoted: Some(("TIMESTAMP '", "'")),
        create_params: Some(&["precision"]),
        numeric: false,
        subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeTimestamp),
    },
    Spec {
        name: "interval day to second",
        data_type: XdbcDataType::XdbcInterval,
        column_size: None,
        quoted: Some(("INTERVAL '", "'")),
        create_params: None,
        numeric: false,
        subcode: Some(XdbcDatetimeSubcode::XdbcSubcodeIntervalDayToSecond),
    },
];

/// Builds the answer to `GetXdbcTypeInfo` (sorted by data type, as the spec asks). The date
/// subcode is 1, which prost names `XdbcSubcodeYear` (the proto aliases DATE and YEAR).
pub(crate) fn xdbc_type_info_data() -> XdbcTypeInfoData {
    let mut builder = XdbcTypeInfoDataBuilder::new();
    for spec in TYPES {
        builder.append(XdbcTypeInfo {
            type_name: spec.name.into(),
            data_type: spec.data_type,
            column_size: spec.column_size,
            literal_prefix: spec.quoted.map(|(p, _)| p.into()),
            literal_suffix: spec.quoted.map(|(_, s)| s.into()),
            create_params: spec
                .create_params
                .map(|p| p.iter().map(|s| (*s).to_owned()).collect()),
            nullable: Nullable::NullabilityNullable,
            case_sensitive: spec.data_type == XdbcDataType::XdbcVarchar,
            searchable: Searchable::Full,
            unsigned_attribute: spec.numeric.then_some(false),
            fixed_prec_scale: spec.data_type == XdbcDataType::XdbcDecimal,
            auto_increment: spec.numeric.then_some(false),
            local_type_name: Some(spec.name.into()),
            minimum_scale: (spec.data_type == XdbcDataType::XdbcDecimal).then_some(0),
            maximum_scale: (spec.data_type == XdbcDataType::XdbcDecimal).then_some(38),
            sql_data_type: spec.data_type,
            datetime_subcode: spec.subcode,
            num_prec_radix: spec.numeric.then_some(10),
            interval_precision: None,
        });
    }
    // Only fails on inconsistent input, which the table above cannot be.
    #[allow(clippy::expect_used)]
    builder.build().expect("XDBC type info is well-formed")
}

#[cfg(test)]
mod tests {
    use arrow_flight::sql::CommandGetXdbcTypeInfo;

    use super::*;

    #[test]
    fn describes_every_type_and_filters_by_type() {
        let data = xdbc_type_info_data();
        let all = CommandGetXdbcTypeInfo { data_type: None }
            .into_builder(&data)
            .build()
            .expect("all");
        assert_eq!(all.num_rows(), TYPES.len());
        let varchar = CommandGetXdbcTypeInfo {
            data_type: Some(XdbcDataType::XdbcVarchar as i32),
        }
        .into_builder(&data)
        .build()
        .expect("one");
        assert_eq!(varchar.num_rows(), 1);
    }
}
