use arrow_flight::sql::metadata::{XdbcTypeInfoData, XdbcTypeInfoDataBuilder};
pub(crate) fn xdbc_type_info_data() -> XdbcTypeInfoData {
    XdbcTypeInfoDataBuilder::new().build().expect("xdbc")
}
